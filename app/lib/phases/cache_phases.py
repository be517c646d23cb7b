"""The phases of a cache run before the fault, each recorded in the run's history for a check to judge: the store's
methods (set/get/delete of a binary body, expiry, spread over the shards, clear), and the same operations through a
client-side ring of independent primaries beside the cluster store. What each call returned is an observation
(bytes shown with repr), so lib/checks/cache_checks.py judges the record alone."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import redis

from lib.cluster_client import ClusterClient
from lib.history import History
from lib.phases.cluster_phases import Steps, phase
from lib.topology.cluster_topology import Shard, key_in_shard
from lib.util import format_endpoint
from lib.waits import WaitTimeout, wait_until
from lib.workload.cache_ring import RingStore, exercise
from lib.workload.cache_store import ClusterCacheStore, storage_key

SPREAD_KEYS = 300
RING_KEYS = 300
TTL_S = 1.5
BODY = b"HTTP/1.1 200 OK\r\n\r\n\x00\xff binary body"
BIGGEST_KEY = 2**64 - 1  # the largest key: 64 bits, unsigned


def _later(seconds: float = 60) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def observe_basics(store: ClusterCacheStore, history: History) -> None:
    """set/get of a binary body on the largest key, delete, a key never set, expirations in the past."""
    def body(step: Steps) -> None:
        store.set(BIGGEST_KEY, BODY, _later())
        step("get after set", lambda: repr(store.get(BIGGEST_KEY)))
        store.delete(BIGGEST_KEY)
        step("get after delete", lambda: repr(store.get(BIGGEST_KEY)))
        step("get never set", lambda: repr(store.get(12345)))
        store.set(7, b"old", _later())
        store.set(7, b"new", datetime.now(UTC) - timedelta(seconds=1))
        step("found after a past expiration replaced it", lambda: store.get(7)[1])
        store.set(8, b"stale", datetime.now(UTC) - timedelta(seconds=1))
        step("found after a set with a past expiration", lambda: store.get(8)[1])

    phase(history, "store basics", body)


def observe_ttl(store: ClusterCacheStore, history: History) -> None:
    """An entry set to expire in TTL_S: its PTTL right after, and when it was gone."""
    def body(step: Steps) -> None:
        key = 424242
        set_at = time.monotonic()
        store.set(key, b"short-lived", _later(TTL_S))
        step("pttl", lambda: store.client.pttl(storage_key(store.prefix, key)))
        try:
            wait_until(lambda: (not store.get(key)[1], "still there"), timeout=TTL_S + 10,
                       what=f"the entry to expire {TTL_S} s after it was set")
        except WaitTimeout as exc:
            step.note("gone after", error=str(exc))
            return
        step.note("gone after", round(time.monotonic() - set_at, 3))

    phase(history, "store ttl", body)


def observe_spread(store: ClusterCacheStore, history: History) -> None:
    """SPREAD_KEYS entries written, then counted on each primary."""
    def body(step: Steps) -> None:
        for key in range(SPREAD_KEYS):
            store.set(key * 7919, f"page {key}".encode(), _later())
        step("counts", store.shard_counts)

    phase(history, "store spread", body)


def observe_clear(store: ClusterCacheStore, client: ClusterClient, shards: list[Shard], foreign_prefix: str,
                  history: History) -> None:
    """clear() on the store, with a key outside its prefix on each shard that must be left alone."""
    foreign = [key_in_shard(shard, foreign_prefix, i) for i, shard in enumerate(shards)]

    def body(step: Steps) -> None:
        for key in foreign:
            client.call(lambda rc, k=key: rc.set(k, "not the cache's"))
        try:
            before = store.shard_counts()
            if not sum(before.values()):
                for key in range(SPREAD_KEYS):
                    store.set(key, b"x", _later())
                before = store.shard_counts()
            step.note("before", before)
            step("deleted", store.clear)
            step("after", store.shard_counts)
            step("foreign keys kept", lambda: sum(client.call(lambda rc, k=key: rc.get(k)) is not None
                                                  for key in foreign))
        finally:
            for key in foreign:
                client.call(lambda rc, k=key: rc.delete(k))
        step.note("foreign keys", len(foreign))

    phase(history, "store clear", body)


def observe_ring(store: ClusterCacheStore, client: ClusterClient, shards: list[Shard], expiration: datetime,
                 history: History) -> None:
    """The same set/get/delete through a client-side ring over the primaries, and through the cluster store."""
    keys = [k * 104729 + 1 for k in range(RING_KEYS)]

    def body(step: Steps) -> None:
        nodes = [redis.Redis(*client.reachable(s.primary), password=client.password, socket_timeout=2.0)
                 for s in shards]
        try:
            step("ring", lambda: exercise(RingStore(nodes, store.prefix), keys, expiration).to_dict())
        finally:
            for node in nodes:
                node.close()
        step("cluster store", lambda: exercise(store, keys, expiration).to_dict())
        step.note("ring nodes", [format_endpoint(*s.primary.announced) for s in shards])

    phase(history, "ring vs cluster", body)
