"""An HTTP-response cache store on Valkey/Redis: one interface, on a real Cluster or on one server.

The interface is the one users of HTTP-cache middlewares know (get/set/delete/clear on a 64-bit
key). The cluster implementation uses a real cluster client (redis-py RedisCluster), which follows
the slot map and MOVED redirects; a client-side "ring" of independent nodes does not (see
lib/workload/cache_ring.py for that comparison). The same class serves a single server and a Sentinel
master (Sentinel.master_for returns a redis.Redis), so app code runs on every topology.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Protocol, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode as StartupNode
from redis.cluster import RedisCluster
from redis.retry import Retry

from lib.clients.call_counter import CallCounter
from lib.clients.keyspace import delete_prefix, keys_under
from lib.clients.topology_refresh import BackgroundRefresher, RefreshPolicy
from lib.topology.cluster_topology import read_cluster_nodes, shards_of

MAX_KEY = 2**64 - 1
T = TypeVar("T")


DEFAULT_REFRESH = RefreshPolicy()


class CacheError(redis.RedisError):
    """The store could not do what was asked; the server's error is the __cause__ (and in the text)."""


class CacheUnavailable(CacheError, redis.ConnectionError):
    """No server answered (connection refused, timeout, cluster down): e.g. a failover in progress."""


class CacheStore(Protocol):
    def get(self, key: int) -> tuple[bytes, bool]: ...

    def set(self, key: int, response: bytes, expiration: datetime) -> None: ...

    def delete(self, key: int) -> None: ...

    def clear(self) -> int: ...


def storage_key(prefix: str, key: int) -> str:
    """prefix + 16 hex digits: fixed width, so SCAN patterns and logs line up; rejects non-uint64."""
    if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key <= MAX_KEY:
        raise ValueError(f"cache key must be an unsigned 64-bit integer, got {key!r}")
    return f"{prefix}{key:016x}"


def ttl_ms(expiration: datetime, now: datetime | None = None) -> int | None:
    """Milliseconds until expiration (at least 1), or None when it is already past.

    A naive datetime is taken as UTC: comparing naive and aware datetimes raises, and a server
    clock is UTC anyway.
    """
    if expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    remaining = (expiration - now).total_seconds()
    if remaining <= 0:
        return None
    return max(1, int(remaining * 1000))


@contextmanager
def _typed_errors(action: str) -> Iterator[None]:
    """Server errors reach the caller as CacheError/CacheUnavailable, never swallowed."""
    try:
        yield
    except CacheError:
        raise
    except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterDownError,
            redis.exceptions.RedisClusterException) as exc:
        # RedisClusterException (no reachable node, slot not covered) is not a RedisError in redis-py.
        raise CacheUnavailable(f"cache {action}: {type(exc).__name__}: {exc}") from exc
    except redis.RedisError as exc:
        raise CacheError(f"cache {action}: {type(exc).__name__}: {exc}") from exc


class _KeyValueStore:
    """get/set/delete shared by both implementations: single-key commands work on either client."""

    def __init__(self, client: redis.Redis | RedisCluster, prefix: str):
        if not prefix:
            raise ValueError("a cache store needs a non-empty key prefix: clear() deletes everything under it")
        self.client, self.prefix = client, prefix

    def get(self, key: int) -> tuple[bytes, bool]:
        name = storage_key(self.prefix, key)
        with _typed_errors(f"GET {name}"):
            value = self.client.get(name)
        if value is None:
            return b"", False
        return (value.encode() if isinstance(value, str) else value), True

    def set(self, key: int, response: bytes, expiration: datetime) -> None:
        """Store until expiration; an expiration in the past deletes the entry instead."""
        name = storage_key(self.prefix, key)
        expires_in = ttl_ms(expiration)
        with _typed_errors(f"SET {name}"):
            if expires_in is None:
                self.client.unlink(name)
            else:
                self.client.set(name, response, px=expires_in)

    def delete(self, key: int) -> None:
        name = storage_key(self.prefix, key)
        with _typed_errors(f"UNLINK {name}"):
            self.client.unlink(name)


class RedisCacheStore(_KeyValueStore):
    """The store on one server, or on a Sentinel master (Sentinel.master_for(name) is a redis.Redis)."""

    def __init__(self, client: redis.Redis, prefix: str):
        super().__init__(client, prefix)

    def clear(self) -> int:
        """SCAN + UNLINK this store's prefix only (never FLUSHDB); returns the number deleted."""
        with _typed_errors(f"clear {self.prefix}*"):
            return delete_prefix(self.client, self.prefix, cluster_node=True)


class ClusterCacheStore(_KeyValueStore):
    """The store on a real cluster: RedisCluster routes each key to the primary that owns its slot."""

    def __init__(self, cluster: RedisCluster, prefix: str, *, address_remap: Callable | None = None,
                 refresh: RefreshPolicy | None = None):
        super().__init__(cluster, prefix)
        self.address_remap = address_remap
        self._refresher = BackgroundRefresher(cluster.nodes_manager, refresh) if refresh is not None else None
        # refresh=None: redis-py's own inline re-read, left in place and counted
        self._inline = CallCounter().wrap(cluster.nodes_manager, "initialize") if refresh is None else None

    @classmethod
    def connect(cls, seeds: list[tuple[str, int]], prefix: str, *, password: str | None = None,
                address_remap: Callable | None = None, timeout: float = 0.5,
                refresh: RefreshPolicy | None = DEFAULT_REFRESH) -> ClusterCacheStore:
        """A store on its own RedisCluster (bytes, not decoded: bodies may be binary).

        Short timeouts and one re-route, no backoff: during a failover a cache lookup should fail fast
        (the caller serves from the origin), not hang the request. The slot map is re-read off the
        request path, cheaply and at most once per interval (lib/clients/topology_refresh.py): re-read
        inline on every failed lookup, it slowed the healthy shards' requests too (96 -> 57 requests/s).
        refresh=None keeps redis-py's own inline re-read (counted), for comparison.
        """
        cluster = RedisCluster(startup_nodes=[StartupNode(host, port) for host, port in seeds], password=password,
                               address_remap=address_remap, retry=Retry(NoBackoff(), 1), socket_timeout=timeout,
                               socket_connect_timeout=timeout)
        return cls(cluster, prefix, address_remap=address_remap, refresh=refresh)

    def refreshes(self) -> int:
        """Whole slot-map re-reads since the store opened."""
        return self._refresher.refreshes if self._refresher is not None else self._inline.count  # type: ignore[union-attr]

    def close(self) -> None:
        if self._refresher is not None:
            self._refresher.stop()
        self.client.close()

    def clear(self) -> int:
        """SCAN + UNLINK the prefix on every primary: keys of one prefix span all slots, so all shards.

        The primaries are read from the cluster now, not from the client's slot map: after a
        failover the client may not have noticed yet, and a stale map names a demoted primary
        (read-only) and misses the promoted one. A primary that does not answer raises: a clear
        that silently skipped a shard would leave stale pages behind.
        """
        deleted = 0
        with _typed_errors(f"clear {self.prefix}*"):
            for node in self._primaries_now():
                with node:
                    deleted += delete_prefix(node, self.prefix, cluster_node=True, asking=True)
        return deleted

    def shard_counts(self) -> dict[str, int]:
        """Keys under the prefix per primary (host:port): shows the entries spread over every shard."""
        counts = {}
        with _typed_errors(f"count {self.prefix}*"):
            for node in self._primaries_now():
                with node:
                    kwargs = node.get_connection_kwargs()
                    counts[f"{kwargs['host']}:{kwargs['port']}"] = sum(1 for _ in keys_under(node, self.prefix))
        return counts

    def _primaries_now(self) -> list[redis.Redis]:
        """A plain client to every primary that owns slots, per CLUSTER NODES of the first node that answers."""
        errors = []
        for known in self.client.get_nodes():
            try:
                view = read_cluster_nodes(self.client.get_redis_connection(known))
                break
            except redis.RedisError as exc:
                errors.append(f"{known.name}: {type(exc).__name__}: {exc}")
        else:
            raise redis.ConnectionError(f"no cluster node answered CLUSTER NODES ({'; '.join(errors)})")
        settings = self.client.get_connection_kwargs()
        remap = self.address_remap or (lambda address: address)
        return [redis.Redis(*remap(shard.primary.announced), password=settings.get("password"),
                            username=settings.get("username"), socket_timeout=settings.get("socket_timeout"),
                            socket_connect_timeout=settings.get("socket_connect_timeout"), retry=Retry(NoBackoff(), 0))
                for shard in shards_of(view)]
