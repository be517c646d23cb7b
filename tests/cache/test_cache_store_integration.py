"""Every store method on a real local cluster and on a real Sentinel master; the middleware on a real store."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from lib.cluster_client import ClusterClient
from lib.topology.cluster_topology import key_in_shard, shards_of
from lib.util import free_ports, key_namespace
from lib.waits import wait_until
from lib.workload.cache_store import CacheUnavailable, ClusterCacheStore, RedisCacheStore, storage_key
from lib.workload.http_cache import HTTPCache
from lib.workload.http_requests import fetch
from lib.workload.http_server import LocalWsgiServer, OriginApp

pytestmark = pytest.mark.integration


def later(seconds: float = 60) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def test_cluster_store_set_get_delete_and_missing_key(cluster_store: ClusterCacheStore):
    cluster_store.set(2**64 - 1, b"\x00body\xff", later())
    assert cluster_store.get(2**64 - 1) == (b"\x00body\xff", True)
    assert cluster_store.get(1) == (b"", False), "a key never set"
    cluster_store.delete(2**64 - 1)
    assert cluster_store.get(2**64 - 1) == (b"", False)
    cluster_store.delete(2)  # deleting a missing key is not an error


def test_cluster_store_past_expiration_stores_nothing_and_deletes_the_entry(cluster_store: ClusterCacheStore):
    cluster_store.set(5, b"old", later())
    cluster_store.set(5, b"new", datetime.now(UTC) - timedelta(seconds=1))
    cluster_store.set(6, b"stale", datetime.now(UTC) - timedelta(seconds=1))
    assert cluster_store.get(5) == (b"", False) and cluster_store.get(6) == (b"", False)


def test_cluster_store_ttl_comes_from_the_absolute_expiration(cluster_store: ClusterCacheStore):
    set_at = time.monotonic()
    cluster_store.set(9, b"short", later(1.0))
    pttl = cluster_store.client.pttl(storage_key(cluster_store.prefix, 9))
    assert 0 < pttl <= 1000, f"PTTL {pttl} ms right after set with a 1 s expiration"
    wait_until(lambda: (not cluster_store.get(9)[1], "still there"), timeout=15, what="the entry to expire")
    assert time.monotonic() - set_at >= 0.9, "expired before its expiration"


def test_cluster_store_clear_empties_every_primary_and_keeps_foreign_keys(cluster_stack,
                                                                         cluster_store: ClusterCacheStore):
    client = ClusterClient(cluster_stack.endpoints("server"))
    shards = shards_of(client.nodes())
    foreign = [key_in_shard(s, key_namespace("cache-foreign"), i) for i, s in enumerate(shards)]
    try:
        for key in foreign:
            client.call(lambda rc, k=key: rc.set(k, "someone else's"))
        for key in range(200):
            cluster_store.set(key * 7919, b"page", later())
        before = cluster_store.shard_counts()
        assert len(before) == 3 and all(before.values()), f"entries on every shard before clear: {before}"
        assert cluster_store.clear() == 200
        assert cluster_store.shard_counts() == dict.fromkeys(before, 0)
        assert [client.call(lambda rc, k=key: rc.get(k)) for key in foreign] == ["someone else's"] * 3
    finally:
        for key in foreign:
            client.call(lambda rc, k=key: rc.delete(k))
        client.close()


def test_sentinel_master_store_runs_the_same_operations(sentinel_store: RedisCacheStore):
    sentinel_store.set(1, b"on the master", later())
    assert sentinel_store.get(1) == (b"on the master", True)
    sentinel_store.set(2, b"gone", datetime.now(UTC) - timedelta(seconds=1))
    assert sentinel_store.get(2) == (b"", False)
    sentinel_store.delete(1)
    assert sentinel_store.get(1) == (b"", False)
    for key in range(50):
        sentinel_store.set(key, b"x", later())
    foreign = key_namespace("cache-foreign")
    sentinel_store.client.set(foreign, "kept")
    try:
        assert sentinel_store.clear() == 50
        assert sentinel_store.get(3) == (b"", False) and sentinel_store.client.get(foreign) == b"kept"
    finally:
        sentinel_store.client.delete(foreign)


def test_middleware_on_the_cluster_sets_miss_then_hit(cluster_store: ClusterCacheStore):
    origin = OriginApp()
    with LocalWsgiServer(HTTPCache(origin, cluster_store, ttl=timedelta(minutes=1))) as server:
        first = fetch(server.url, "/page?x=1", timeout=10)
        second = fetch(server.url, "/page?x=1", timeout=10)
        other = fetch(server.url, "/page?x=2", timeout=10)
    assert (first[:2], second[:2], other[:2]) == ((200, "MISS"), (200, "HIT"), (200, "MISS"))
    assert origin.calls["/page"] == 2, "the hit did not reach the origin"


def test_middleware_fails_open_when_the_store_is_down():
    (dead_port,) = free_ports(1)  # nothing listens here: every store call is refused
    # No retries: redis-py 8's default Retry (3 retries, backoff) made each refused call take 4.4 s here.
    client = redis.Redis(port=dead_port, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0))
    store = RedisCacheStore(client, key_namespace("cache-test"))
    with pytest.raises(CacheUnavailable):
        store.get(1)
    origin = OriginApp()
    cache = HTTPCache(origin, store, expose_errors=True)
    with LocalWsgiServer(cache) as server:
        answers = [fetch(server.url, "/a", timeout=10) for _ in range(3)]
    assert answers == [(200, "MISS", "ConnectionError")] * 3, "served by the app, never a 5xx"
    assert cache.stats.errors == 3 and origin.calls["/a"] == 3


def test_the_wsgi_server_is_stopped_after_an_error():
    server = LocalWsgiServer(OriginApp())
    with pytest.raises(RuntimeError), server:
        port = server.port
        raise RuntimeError("a failing test body")
    with pytest.raises(OSError):
        fetch(f"http://127.0.0.1:{port}", "/", timeout=2)
