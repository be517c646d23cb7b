"""Valkey GLIDE (glide_sync) as users run it: GlideClusterClient with its defaults, and, since GLIDE has no
Sentinel support (valkey-glide #2761), a standalone GlideClient that is rebuilt the way GLIDE users must.

The rebuild: when a write fails with READONLY, a connection error or a timeout, ask the sentinels
(SENTINEL GET-MASTER-ADDR-BY-NAME) again; if the master moved, build a client on the new one and close
the old one once no writer uses it. The failed write itself is not retried: the next one goes to the new
master. One glide_sync client is safe to share between threads (its Rust core multiplexes one connection;
checked with six threads writing at once), so set() takes no lock around the command.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import redis
from glide_sync import (
    ClosingError,
    GlideClient,
    GlideClientConfiguration,
    GlideClusterClient,
    GlideClusterClientConfiguration,
    GlideError,
    NodeAddress,
    ServerCredentials,
)
from glide_sync import ConnectionError as GlideConnectionError
from glide_sync import TimeoutError as GlideTimeoutError

from lib.clients.libraries.base import GLIDE, Address, ClusterTarget, SentinelTarget, package_version
from lib.errors import SetupError
from lib.history import FAIL, UNKNOWN, ClientOpError

DIST = "valkey-glide-sync"
SENTINEL_TIMEOUT = 0.5  # s: one unreachable sentinel must not hold up a writer for long
COMMON_NOTES = [
    "Default request timeout 250 ms: a write to a dead or paused node ends as TimeoutError (unknown), "
    "not as refused, so it counts as unknown.",
    "One client is shared by the writer threads without a lock: its core multiplexes the connection.",
]


def outcome_of(exc: BaseException) -> str:
    """UNKNOWN for a timeout or a dropped connection (the command may have run), FAIL otherwise."""
    if isinstance(exc, GlideTimeoutError):
        return UNKNOWN
    if isinstance(exc, GlideConnectionError):
        return FAIL if "refused" in str(exc).lower() else UNKNOWN
    # ClosingError: the client is closed, nothing was sent. RequestError: the server refused it
    # (ReadOnly, CLUSTERDOWN, MOVED after its redirects, TRYAGAIN) or the core found no node for the slot.
    return FAIL


def translate(exc: GlideError) -> ClientOpError:
    return ClientOpError(outcome_of(exc), type(exc).__name__, str(exc))


def is_readonly(exc: BaseException) -> bool:
    """GLIDE words READONLY as "ReadOnly: You can't write against a read only replica"."""
    text = str(exc).lower()
    return "readonly" in text or "read only" in text


def needs_new_master(exc: BaseException) -> bool:
    """The failures after which a GLIDE user asks the sentinels again."""
    return isinstance(exc, GlideConnectionError | GlideTimeoutError | ClosingError) or is_readonly(exc)


def credentials(password: str | None) -> ServerCredentials | None:
    return ServerCredentials(password=password) if password else None


class SentinelLookup:
    """Asks the sentinels for the master's address with redis-py (GLIDE cannot talk to a sentinel for us)."""

    def __init__(self, target: SentinelTarget, client_name: str):
        self.target = target
        self._sentinels = [redis.Redis(host, port, password=target.sentinel_password, client_name=client_name,
                                       socket_timeout=SENTINEL_TIMEOUT, socket_connect_timeout=SENTINEL_TIMEOUT,
                                       decode_responses=True) for host, port in target.sentinels]

    def master(self) -> Address | None:
        """The first answer of a sentinel, remapped; None when no sentinel answers with a master."""
        for sentinel in self._sentinels:
            try:
                reply = sentinel.sentinel_get_master_addr_by_name(self.target.master_name)
            except (redis.RedisError, OSError):
                continue
            if reply:
                return self.target.remap((reply[0], int(reply[1])))
        return None

    def close(self) -> None:
        for sentinel in self._sentinels:
            sentinel.close()


class GlideSentinelClient:
    """A standalone GlideClient on the master the sentinels name, rebuilt when the master moves."""

    name = GLIDE

    def __init__(self, target: SentinelTarget, client_name: str):
        self.version = package_version(DIST)
        self.notes = ["No Sentinel support (valkey-glide #2761): a standalone GlideClient on the master that "
                      "SENTINEL GET-MASTER-ADDR-BY-NAME names (asked with redis-py).",
                      "After a ReadOnly, connection or timeout error it asks the sentinels again and, if the "
                      "master moved, builds a new client (the failed write is not retried), as GLIDE users must.",
                      "Refreshes: sentinel master lookups of that rebuild (the first one included).",
                      *COMMON_NOTES]
        self._client_name, self._password = client_name, target.password
        self._lookup = SentinelLookup(target, client_name)
        self._lookups = 0  # counted here, under _rebuilding (or before any writer)
        self._lock = threading.Lock()  # guards the current client and the use counts
        self._rebuilding = threading.Lock()  # one writer asks the sentinels at a time
        self._users: dict[int, int] = {}  # id(client) -> writers inside set() with it
        self._retired: dict[int, GlideClient] = {}  # replaced clients, closed when their last writer leaves
        self._closed = False
        address = self._ask_master()
        if address is None:
            self._lookup.close()
            raise SetupError(f"no sentinel of {target.sentinels} names a master {target.master_name!r}: "
                             "check the addresses and the master name")
        self._address = address
        try:
            self._client = self._connect(address)
        except GlideError as exc:
            self._lookup.close()
            raise SetupError(f"GLIDE cannot connect to the master {address[0]}:{address[1]} ({exc}): "
                             "is it reachable from here?") from exc

    def _ask_master(self) -> Address | None:
        self._lookups += 1
        return self._lookup.master()

    def _connect(self, address: Address) -> GlideClient:
        config = GlideClientConfiguration([NodeAddress(*address)], client_name=self._client_name,
                                          credentials=credentials(self._password))
        return GlideClient.create(config)

    def set(self, key: str, value: str) -> None:
        with self._lock:
            client = self._client
            self._users[id(client)] = self._users.get(id(client), 0) + 1
        try:
            client.set(key, value)
        except GlideError as exc:
            if needs_new_master(exc):
                self._follow_master(client)
            raise translate(exc) from exc
        finally:
            self._leave(client)

    def _leave(self, client: GlideClient) -> None:
        with self._lock:
            self._users[id(client)] -= 1
            done = self._users[id(client)] == 0 and id(client) in self._retired
            if done:
                del self._users[id(client)], self._retired[id(client)]
        if done:
            client.close()

    def _follow_master(self, failed: GlideClient) -> None:
        """If the master moved, switch to a client on the new one; another writer already at it is enough."""
        if not self._rebuilding.acquire(blocking=False):
            return
        try:
            if self._closed or self._client is not failed:
                return  # closed, or rebuilt since this write began
            address = self._ask_master()
            if address is None or address == self._address:
                return
            try:
                client = self._connect(address)
            except GlideError:
                return  # the next failed write asks again
            with self._lock:
                old, self._client, self._address = self._client, client, address
                self._retired[id(old)] = old  # the failed writer still holds it: closed in _leave
        finally:
            self._rebuilding.release()

    def refreshes(self) -> int | None:
        return self._lookups

    def close(self) -> None:
        """After the writers stopped: glide_sync frees a client that a command may still be using."""
        with self._lock:
            self._closed = True
            clients = [self._client, *self._retired.values()]
            self._retired.clear()
        for client in clients:
            client.close()
        self._lookup.close()


class GlideCluster:
    """GlideClusterClient with its default configuration."""

    name = GLIDE

    def __init__(self, target: ClusterTarget, client_name: str):
        self.version = package_version(DIST)
        self.notes = ["GlideClusterClient with default settings: it follows MOVED and reconnects by itself; its "
                      "periodic topology check runs every 60 s by default (glide-core "
                      "DEFAULT_PERIODIC_TOPOLOGY_CHECKS_INTERVAL; not readable from the Python config).",
                      "Refreshes: not observable through its API.",
                      *COMMON_NOTES]
        resolver: Callable[[str, int], tuple[str, int]] | None = None
        if target.host_map:
            host_map = dict(target.host_map)
            resolver = lambda host, port: (host_map.get(host, host), port)  # noqa: E731
            self.notes.append("Announced names are remapped with its address_resolver.")
        config = GlideClusterClientConfiguration([NodeAddress(host, port) for host, port in target.seeds],
                                                 client_name=client_name, credentials=credentials(target.password),
                                                 address_resolver=resolver)
        try:
            self._client = GlideClusterClient.create(config)
        except GlideError as exc:
            raise SetupError(f"GLIDE cannot connect to the cluster seeds {target.seeds} ({exc}): "
                             "are they reachable from here?") from exc

    def set(self, key: str, value: str) -> None:
        try:
            self._client.set(key, value)
        except GlideError as exc:
            raise translate(exc) from exc

    def refreshes(self) -> int | None:
        return None

    def close(self) -> None:
        self._client.close()


def open_sentinel(target: SentinelTarget, client_name: str) -> GlideSentinelClient:
    return GlideSentinelClient(target, client_name)


def open_cluster(target: ClusterTarget, client_name: str) -> GlideCluster:
    return GlideCluster(target, client_name)
