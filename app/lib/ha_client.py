"""A Sentinel client that follows failovers, with a capped retry policy and address remapping.

Services announce names (valkey-replica1:6380) that resolve inside the compose network but not on
the host; the remap turns an announced address into one this machine can reach.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, ReadOnlyError, TimeoutError
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel

from lib.report import SetupError
from lib.util import format_endpoint

Address = tuple[str, int]

# Backoff between reconnect attempts is capped at 50 ms: after the new master is announced the client
# is writing again within one cap (plus a round trip), so the downtime it reports stays within
# ~50 ms of the true one. Few retries per call, so an operation fails (and is counted) during an
# outage instead of hiding it inside one long call.
BACKOFF_CAP_S = 0.05
BACKOFF_BASE_S = 0.005
RETRIES_PER_CALL = 2


def retry_policy() -> Retry:
    return Retry(ExponentialBackoff(cap=BACKOFF_CAP_S, base=BACKOFF_BASE_S), RETRIES_PER_CALL,
                 supported_errors=(ConnectionError, TimeoutError, socket.timeout, ReadOnlyError))


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

    def discover_master(self, service_name: str) -> Address:
        return self.remap(super().discover_master(service_name))

    def discover_slaves(self, service_name: str) -> list[Address]:
        return [self.remap(address) for address in super().discover_slaves(service_name)]


class HAClient:
    """The harness's view of a Sentinel deployment: the master, and what each sentinel says."""

    def __init__(self, sentinels: list[Address], master_name: str, *, password: str | None = None,
                 host_map: dict[str, str] | None = None, socket_timeout: float = 0.5):
        if not sentinels:
            raise SetupError("no sentinel given: use --sentinel HOST:PORT")
        self.sentinel_addresses = sentinels
        self.master_name = master_name
        self.password = password
        self.remap = AddressRemap(sentinels[0][0], dict(host_map or {}))
        timeouts = {"socket_timeout": socket_timeout, "socket_connect_timeout": socket_timeout}
        self.sentinel = RemappingSentinel(sentinels, self.remap, sentinel_kwargs=dict(timeouts), password=password,
                                          retry=retry_policy(), **timeouts)
        self._master: redis.Redis | None = None

    def master(self) -> redis.Redis:
        """A client bound to whichever node is master now; it re-asks the sentinels after errors."""
        if self._master is None:
            self._master = self.sentinel.master_for(self.master_name, decode_responses=True)
        return self._master

    def master_address(self) -> Address:
        return self.sentinel.discover_master(self.master_name)

    def check_reachable(self) -> Address:
        """The master's address, or a SetupError that says what went wrong and what to do."""
        reachable = [a for a in self.sentinel_addresses if _answers(a, self.password)]
        if not reachable:
            listed = ", ".join(format_endpoint(*a) for a in self.sentinel_addresses)
            raise SetupError(f"no sentinel reachable at {listed}: start the stack (python app/stack.py up ha, "
                             f"or docker-compose -f docker-compose.ha.yml up -d) or pass --sentinel HOST:PORT")
        try:
            return self.master_address()
        except MasterNotFoundError as exc:
            raise SetupError(f"the sentinels do not know a healthy master named {self.master_name!r} "
                             f"(--master-name; ours is myvalkey): {exc}") from None

    def sentinel_views(self) -> dict[str, str]:
        """What each sentinel reports as the master right now ('error: ...' if it cannot say)."""
        views = {}
        for address in self.sentinel_addresses:
            client = self.node(address)
            try:
                reply = client.sentinel_get_master_addr_by_name(self.master_name)
                views[format_endpoint(*address)] = (format_endpoint(reply[0], int(reply[1]))
                                                    if reply else "unknown")
            except redis.RedisError as exc:
                views[format_endpoint(*address)] = f"error: {type(exc).__name__}"
            finally:
                client.close()
        return views

    def node(self, address: Address, timeout: float = 1.0) -> redis.Redis:
        """A plain client to one node (no sentinel logic), e.g. to read INFO or check keys."""
        return redis.Redis(host=address[0], port=address[1], password=self.password, decode_responses=True,
                           socket_timeout=timeout, socket_connect_timeout=timeout)

    def close(self) -> None:
        if self._master is not None:
            self._master.close()
        for client in self.sentinel.sentinels:
            client.close()


def _answers(address: Address, password: str | None) -> bool:
    client = redis.Redis(host=address[0], port=address[1], password=password, socket_timeout=1.0,
                         socket_connect_timeout=1.0)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()
