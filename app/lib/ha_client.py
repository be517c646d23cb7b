"""A Sentinel client that follows failovers, with a capped retry policy (call()) and address remapping.

Services announce names (valkey-replica1:6380) that resolve inside the compose network but not on
the host; the remap turns an announced address into one this machine can reach.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError, ReadOnlyError, ResponseError, TimeoutError
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel

from lib.clients.kept_clients import KeptClients
from lib.errors import SetupError
from lib.history import Attempts
from lib.retry import RetryPolicy
from lib.util import format_endpoint

Address = tuple[str, int]
T = TypeVar("T")

# Backoff between reconnect attempts is capped at 50 ms: after the new master is announced the client
# is writing again within one cap (plus a round trip), so the downtime it reports stays within
# ~50 ms of the true one. Few retries per call, so an operation fails (and is counted) during an
# outage instead of hiding it inside one long call.
BACKOFF_CAP_S = 0.05
BACKOFF_BASE_S = 0.005
RETRIES_PER_CALL = 2


RETRYABLE = (ConnectionError, TimeoutError, socket.timeout, ReadOnlyError)


class SwitchAwareBackoff:
    """The wait between two attempts: exponential, capped, and cut short when the sentinels announce a new
    master (+switch-master), so that the first attempt after the announcement is not a backoff away.
    (Measured: a blind 10-20 ms backoff put us 10 ms behind stock redis-py after the switch.)"""

    def __init__(self, switched: threading.Event):
        self.switched = switched
        self.backoff = ExponentialBackoff(cap=BACKOFF_CAP_S, base=BACKOFF_BASE_S)

    def wait(self, failures: int) -> None:
        self.switched.wait(self.backoff.compute(failures))  # returns at once when a switch is pending


@dataclass
class AddressRemap:
    """Announced address -> reachable address.

    Explicit host_map entries win; an announced host that does not resolve here (a compose service
    name seen from the host) maps to fallback_host, where compose publishes the same port.
    """

    fallback_host: str
    host_map: dict[str, str] = field(default_factory=dict)
    _resolves: dict[str, bool] = field(default_factory=dict)

    def __call__(self, address: Address) -> Address:
        host, port = address[0], int(address[1])
        if host in self.host_map:
            return self.host_map[host], port
        if host not in self._resolves:
            try:
                socket.getaddrinfo(host, port)
                self._resolves[host] = True
            except OSError:
                self._resolves[host] = False
        return (host if self._resolves[host] else self.fallback_host), port


class RemappingSentinel(Sentinel):
    """redis-py's Sentinel, with every address it discovers passed through a remap."""

    def __init__(self, sentinels: list[Address], remap: Callable[[Address], Address], **kwargs):
        super().__init__(sentinels, **kwargs)
        self.remap = remap

    def discover_announced(self, service_name: str) -> Address:
        """The master as announced by the sentinel with the newest configuration.

        redis-py takes the first healthy answer to SENTINEL MASTERS. Right after a failover the
        sentinels switch up to a second apart; a lagging one still names the old master, which
        (after SENTINEL FAILOVER) still accepts writes that will be lost. So: ask all of them, keep
        the highest config-epoch (on a tie, the failover leader, which knows the promotion first),
        and take the address from GET-MASTER-ADDR-BY-NAME, which the leader updates at promotion
        while its SENTINEL MASTERS entry still shows the old master (measured: see docs/ha.md).
        """
        best: tuple[tuple[int, bool], Address] | None = None
        errors = []
        for sentinel in self.sentinels:
            try:
                state = sentinel.sentinel_masters().get(service_name)
                address = sentinel.sentinel_get_master_addr_by_name(service_name) if state else None
            except (ConnectionError, TimeoutError, ResponseError) as exc:  # ResponseError: not a sentinel
                errors.append(f"{sentinel}: {exc!r}")
                continue
            if not state or not address:
                continue
            # A failover leader names the promoted replica before its own entry (still flagged
            # s_down/o_down: that is the old master) switches; trust that, else require a healthy master.
            promoted = (_text(address[0]), int(address[1])) != (state["ip"], int(state["port"]))
            if not promoted and not self.check_master_state(state, service_name):
                continue
            rank = (int(state.get("config-epoch", 0)), "failover_in_progress" in str(state.get("flags", "")))
            if best is None or rank > best[0]:
                best = (rank, (_text(address[0]), int(address[1])))
        if best is None:
            raise MasterNotFoundError(f"No master found for {service_name!r}" + (f": {'; '.join(errors)}"
                                                                               if errors else ""))
        return best[1]

    def discover_master(self, service_name: str) -> Address:
        return self.remap(self.discover_announced(service_name))

    def discover_slaves(self, service_name: str) -> list[Address]:
        return [self.remap(address) for address in super().discover_slaves(service_name)]


class HAClient:
    """The harness's view of a Sentinel deployment: the master, and what each sentinel says."""

    def __init__(self, sentinels: list[Address], master_name: str, *, password: str | None = None,
                 sentinel_password: str | None = None, host_map: dict[str, str] | None = None,
                 socket_timeout: float = 0.5, client_name: str | None = None):
        if not sentinels:
            raise SetupError("no sentinel given: use --sentinel HOST:PORT")
        self.sentinel_addresses = sentinels
        self.master_name = master_name
        self.password = password
        self.sentinel_password = sentinel_password  # sentinels usually have no auth of their own
        self.remap = AddressRemap(sentinels[0][0], dict(host_map or {}))
        timeouts = {"socket_timeout": socket_timeout, "socket_connect_timeout": socket_timeout}
        sentinel_kwargs = dict(timeouts, password=sentinel_password, retry=Retry(NoBackoff(), 0))
        # One attempt per command inside redis-py: the retries (and their backoff) are ours, in call(),
        # so that each failed attempt is seen (an op with one attempt that may have been applied is unknown).
        named = {"client_name": client_name} if client_name else {}  # CLIENT LIST tells compared clients apart
        self.sentinel = RemappingSentinel(sentinels, self.remap, sentinel_kwargs=sentinel_kwargs, password=password,
                                          retry=Retry(NoBackoff(), 0), **timeouts, **named)
        self._switch_pending = threading.Event()
        self.backoff = SwitchAwareBackoff(self._switch_pending)
        self.retry = RetryPolicy(RETRIES_PER_CALL, RETRYABLE, self.backoff.wait)
        self._master: redis.Redis | None = None
        self._views = KeptClients(lambda address: self.node(address, sentinel=True))  # sentinel_views()
        self._listeners: list = []
        self._listener_clients: list[redis.Redis] = []
        self.switches_followed = 0

    def master(self) -> redis.Redis:
        """A client bound to whichever node is master now (one attempt per command; retries: call()).
        Call it for each unit of work.

        redis-py re-asks the sentinels only after an error. After SENTINEL FAILOVER the old master
        keeps answering (as a master) until a sentinel demotes it, up to ~10 s later, and every write
        it takes meanwhile is lost. So we also listen for +switch-master; the next master() call after
        one drops the pooled connections, and the next command connects to the new master. (Closing
        them from the listener thread instead would break a command in flight on another thread.)
        """
        if self._master is None:
            self._master = self.sentinel.master_for(self.master_name, decode_responses=True)
            self._follow_switches()
        elif self._switch_pending.is_set():
            self._switch_pending.clear()
            self.switches_followed += 1
            self._master.connection_pool.disconnect()
        return self._master

    def call(self, operation: Callable[[redis.Redis], T], attempts: Attempts | None = None) -> T:
        """operation(master) under the capped backoff policy; each failed attempt goes to attempts.

        Each attempt asks master() again, so a retry after a failover reaches the new master (the
        failed connection was dropped by redis-py, and the next one asks the sentinels).
        """
        return self.retry.call(lambda: operation(self.master()), attempts.failed if attempts is not None else _ignore)

    def _follow_switches(self) -> None:
        def on_switch(message: dict) -> None:
            if str(message.get("data", "")).split(" ")[0] == self.master_name:
                self._switch_pending.set()

        def on_error(exc: BaseException, pubsub, thread) -> None:
            time.sleep(0.2)  # a sentinel is down: retry its subscription at a calm pace

        for host, port in self.sentinel_addresses:
            client = redis.Redis(host=host, port=port, password=self.sentinel_password,
                                 socket_connect_timeout=1.0, decode_responses=True, retry=Retry(NoBackoff(), 0))
            self._listener_clients.append(client)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(**{"+switch-master": on_switch})
            except redis.RedisError:
                pubsub.close()  # unreachable now: the other sentinels announce the switch too
                continue
            self._listeners.append(pubsub.run_in_thread(sleep_time=0.1, daemon=True, exception_handler=on_error))

    def master_address(self) -> Address:
        """The master's reachable address (announced address passed through the remap)."""
        return self.sentinel.discover_master(self.master_name)

    def announced_master(self) -> Address:
        """The master's address as the sentinels announce it (e.g. valkey-master:6379 in compose)."""
        return self.sentinel.discover_announced(self.master_name)

    def check_reachable(self) -> Address:
        """The master's address, or a SetupError that says what went wrong and what to do."""
        reachable = [a for a in self.sentinel_addresses if answers(a, self.sentinel_password)]
        if not reachable:
            listed = ", ".join(format_endpoint(*a) for a in self.sentinel_addresses)
            raise SetupError(f"no sentinel reachable at {listed}: check the address and that the sentinels run "
                             f"(our stack: python app/stack.py up ha, or docker-compose -f docker-compose.ha.yml "
                             f"up -d; another: --sentinel HOST:PORT, once per sentinel)")
        for address in reachable:
            mode = self.server_mode(address)
            if mode != "sentinel":
                raise SetupError(f"{format_endpoint(*address)} answers but is not a sentinel (INFO server says mode "
                                 f"{mode}): --sentinel takes the sentinels' HOST:PORT (26379-26381 in our stacks), "
                                 "not a data node's")
        try:
            return self.master_address()
        except MasterNotFoundError as exc:
            raise SetupError(f"the sentinels do not know a healthy master named {self.master_name!r} "
                             f"(--master-name; ours is myvalkey): {exc}") from None

    def server_mode(self, address: Address) -> str:
        """INFO server's mode of one sentinel address: 'sentinel', 'standalone', 'cluster' or 'unknown'."""
        client = self.node(address, sentinel=True)
        try:
            info = client.info("server")
        except redis.RedisError as exc:
            return f"unknown ({type(exc).__name__}: {exc})"
        finally:
            client.close()
        return str(info.get("server_mode") or info.get("redis_mode") or "unknown")  # Valkey 9 renamed it

    def sentinel_views(self) -> dict[str, str]:
        """What each sentinel reports as the master right now ('error: ...' if it cannot say); asked every
        few ms while a failover settles, so the clients are kept (lib/clients/kept_clients.py)."""
        views = {}
        for address in self.sentinel_addresses:
            try:
                reply = self._views[address].sentinel_get_master_addr_by_name(self.master_name)
                views[format_endpoint(*address)] = (format_endpoint(reply[0], int(reply[1]))
                                                    if reply else "unknown")
            except redis.RedisError as exc:
                views[format_endpoint(*address)] = f"error: {type(exc).__name__}"
        return views

    def node(self, address: Address, timeout: float = 1.0, *, sentinel: bool = False) -> redis.Redis:
        """A plain client to one node (no sentinel logic, no retries), e.g. to read INFO or check keys.

        No retries: redis-py 8 retries by default with backoff, which turns one refused connection
        into ~3.8 s, and a check such as "is the master down yet?" into a 3.8 s blind spot.
        """
        return redis.Redis(host=address[0], port=address[1],
                           password=self.sentinel_password if sentinel else self.password,
                           decode_responses=True, retry=Retry(NoBackoff(), 0),
                           socket_timeout=timeout, socket_connect_timeout=timeout)

    def close(self) -> None:
        for listener in self._listeners:
            listener.stop()
        for listener in self._listeners:
            listener.join(1.0)
        for client in self._listener_clients:
            client.close()
        self._views.close()
        if self._master is not None:
            self._master.close()
        for client in self.sentinel.sentinels:
            client.close()


def answers(address: Address, password: str | None, timeout: float = 1.0) -> bool:
    """One PING, no retries: does the node answer right now?"""
    client = redis.Redis(host=address[0], port=address[1], password=password, socket_timeout=timeout,
                         socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0))
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _ignore(error: BaseException) -> None:
    """A Retry fail callback for calls whose attempts nobody records."""


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
