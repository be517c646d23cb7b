"""redis-py as users run it: Sentinel(...).master_for(name) and RedisCluster, with their default settings.

Only client_name, the password and address remapping (compose names) are added. Its exceptions become
ClientOpError. redis-py retries a failed command itself (its default Retry), so the method it calls once
per attempt is watched: a write is judged by all its attempts, as lib.history.Attempts does for ours.
valkey_py.py uses the same machinery: valkey-py is a fork of redis-py with the same exception tree.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import redis.exceptions
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

from lib.clients.call_counter import CallCounter
from lib.clients.libraries.base import REDIS_PY, ClusterTarget, SentinelTarget, package_version
from lib.clients.remapped_sentinel import remapped_sentinel
from lib.errors import SetupError
from lib.history import FAIL, UNKNOWN, ClientOpError

# the method the library calls once per attempt of a command (private API: if it is gone, only the
# final error is judged, and the notes say so)
STANDALONE_ATTEMPT, CLUSTER_ATTEMPT = "_send_command_parse_response", "_execute_command"
THREAD_SAFETY = "One client is shared by the writer threads: its connection pools are thread-safe."


def outcome_of(exc: BaseException, errors: ModuleType) -> str:
    """FAIL when the command surely never reached a server, UNKNOWN when it may have run there.

    errors is redis.exceptions or valkey.exceptions (one tree under two names). A failed connect
    ("Error 111 connecting to ...", "Timeout connecting to server") sent nothing.
    """
    text = str(exc)
    never_sent = "connecting to" in text or "Connection refused" in text
    if isinstance(exc, errors.TimeoutError | TimeoutError):
        return FAIL if never_sent else UNKNOWN
    if isinstance(exc, errors.ConnectionError):
        refused = isinstance(exc, errors.AuthenticationError | errors.BusyLoadingError | errors.MaxConnectionsError)
        return FAIL if never_sent or refused or "No master found" in text else UNKNOWN
    if isinstance(exc, ConnectionRefusedError):
        return FAIL
    if isinstance(exc, OSError):  # reset, broken pipe: the command may have reached the server
        return UNKNOWN
    return FAIL  # the server refused (READONLY, CLUSTERDOWN, MOVED too often) or no node serves the slot


def translate(final: BaseException, attempts: list[BaseException], errors: ModuleType) -> ClientOpError:
    """One ClientOpError for an operation: unknown if any attempt may have been applied."""
    every = attempts if any(e is final for e in attempts) else [*attempts, final]
    outcome = UNKNOWN if any(outcome_of(e, errors) == UNKNOWN for e in every) else FAIL
    message = str(final)
    if len(every) > 1:
        message += f" (attempts: {', '.join(type(e).__name__ for e in every)})"
    return ClientOpError(outcome, type(final).__name__, message)


class AttemptLog:
    """The errors of each attempt of the calling thread's current operation."""

    def __init__(self) -> None:
        self._local = threading.local()

    def start(self) -> None:
        self._local.errors = []

    def errors(self) -> list[BaseException]:
        return getattr(self._local, "errors", [])

    def watch(self, owner: Any, method_name: str) -> bool:
        """Record every error of owner.method_name (called once per attempt); False if it has no such method."""
        method = getattr(owner, method_name, None)
        if method is None:
            return False

        def attempt(*args, **kwargs):
            try:
                return method(*args, **kwargs)
            except BaseException as exc:
                self.errors().append(exc)
                raise

        setattr(owner, method_name, attempt)
        return True


class StockClient:
    """One redis-py or valkey-py client behind the ClientLibrary contract."""

    def __init__(self, name: str, version: str, notes: list[str], client: Any, errors: ModuleType,
                 caught: tuple[type[BaseException], ...], attempts: AttemptLog, refreshed: CallCounter,
                 closers: list[Callable[[], None]]):
        self.name, self.version, self.notes = name, version, notes
        self._client, self._errors, self._caught = client, errors, caught
        self._attempts, self._refreshed, self._closers = attempts, refreshed, closers

    def set(self, key: str, value: str) -> None:
        self._attempts.start()
        try:
            self._client.set(key, value)
        except self._caught as exc:
            raise translate(exc, self._attempts.errors(), self._errors) from exc

    def refreshes(self) -> int | None:
        return self._refreshed.count

    def close(self) -> None:
        for close in self._closers:
            close()


def hidden_attempts(watched: bool, method: str) -> list[str]:
    """The note for a library whose per-attempt method could not be watched (it is private API)."""
    return [] if watched else [f"Its retried attempts are not visible ({method} is gone): a write is judged by "
                               "its last error only."]


def open_stock_sentinel(name: str, dist: str, sentinel_class: type, errors: ModuleType,
                        caught: tuple[type[BaseException], ...], target: SentinelTarget,
                        client_name: str) -> StockClient:
    lookups = CallCounter()
    sentinel_kwargs: dict[str, Any] = {"client_name": client_name}
    if target.sentinel_password:
        sentinel_kwargs["password"] = target.sentinel_password
    sentinel = remapped_sentinel(sentinel_class)(target.sentinels, target.remap, lookups,
                                                 sentinel_kwargs=sentinel_kwargs)
    master = sentinel.master_for(target.master_name, client_name=client_name, password=target.password)
    attempts = AttemptLog()
    watched = attempts.watch(master, STANDALONE_ATTEMPT)
    notes = [f"Sentinel(...).master_for({target.master_name!r}) with default settings: it asks the sentinels "
             "for the master on every new connection and reconnects after READONLY.",
             "Refreshes: SENTINEL master lookups it made (the first connections' included).",
             THREAD_SAFETY]
    notes += hidden_attempts(watched, STANDALONE_ATTEMPT)

    def close_sentinels() -> None:
        for client in sentinel.sentinels:
            client.close()

    return StockClient(name, package_version(dist), notes, master, errors, caught, attempts, lookups,
                       [master.close, close_sentinels])


def open_stock_cluster(name: str, dist: str, cluster_class: type, node_class: type, errors: ModuleType,
                       caught: tuple[type[BaseException], ...], target: ClusterTarget,
                       client_name: str) -> StockClient:
    kwargs: dict[str, Any] = {"client_name": client_name, "password": target.password}
    if target.host_map:
        host_map = dict(target.host_map)
        kwargs["address_remap"] = lambda address: (host_map.get(address[0], address[0]), address[1])
    try:
        client = cluster_class(startup_nodes=[node_class(host, port) for host, port in target.seeds], **kwargs)
    except caught as exc:
        raise SetupError(f"{name} cannot reach the cluster seeds {target.seeds} ({exc}): "
                         "are they running and reachable from here?") from exc
    refreshed = CallCounter().wrap(client.nodes_manager, "initialize")
    attempts = AttemptLog()
    watched = attempts.watch(client, CLUSTER_ATTEMPT)
    notes = [f"{cluster_class.__name__} with default settings: after a connection error it reloads the slot "
             "map and retries the command (its default Retry).",
             "Refreshes: slot map reloads (NodesManager.initialize) after open.",
             THREAD_SAFETY]
    notes += hidden_attempts(watched, CLUSTER_ATTEMPT)
    return StockClient(name, package_version(dist), notes, client, errors, caught, attempts, refreshed,
                       [client.close])


CAUGHT = (redis.exceptions.RedisError, redis.exceptions.RedisClusterException, OSError)


def open_sentinel(target: SentinelTarget, client_name: str) -> StockClient:
    return open_stock_sentinel(REDIS_PY, "redis", Sentinel, redis.exceptions, CAUGHT, target, client_name)


def open_cluster(target: ClusterTarget, client_name: str) -> StockClient:
    return open_stock_cluster(REDIS_PY, "redis", RedisCluster, ClusterNode, redis.exceptions, CAUGHT, target,
                              client_name)
