"""Fixtures for the cache tests: stores on the module's cluster (cluster_stack, tests/conftest.py) and on a real
Sentinel stack, always stopped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from conftest import running_stack  # tests/conftest.py
from lib.ha_client import AddressRemap, RemappingSentinel
from lib.launcher.local_stack import LocalStack
from lib.util import key_namespace
from lib.workload.cache_store import ClusterCacheStore, RedisCacheStore

MASTER_NAME = "myvalkey"  # sentinel/sentinel.conf


@pytest.fixture(scope="module")
def ha_stack_module(tmp_path_factory) -> Iterator[LocalStack]:
    with running_stack("ha", tmp_path_factory.mktemp("cache-ha") / "stack") as stack:
        yield stack


@pytest.fixture
def cluster_store(cluster_stack) -> Iterator[ClusterCacheStore]:
    """A store under a run-unique prefix on the cluster; whatever a test leaves is cleared after it."""
    seeds = cluster_stack.endpoints("server")
    store = ClusterCacheStore.connect(seeds, key_namespace("cache-test"), timeout=2.0)
    try:
        yield store
    finally:
        store.clear()
        store.close()


@pytest.fixture
def sentinel_store(ha_stack_module) -> Iterator[RedisCacheStore]:
    """The same store on the Sentinel master (Sentinel.master_for is a plain redis.Redis)."""
    sentinel = RemappingSentinel(ha_stack_module.endpoints("sentinel"), AddressRemap("127.0.0.1"),
                                 socket_timeout=2.0)
    master: redis.Redis = sentinel.master_for(MASTER_NAME, socket_timeout=2.0)
    store = RedisCacheStore(master, key_namespace("cache-test"))
    try:
        yield store
    finally:
        store.clear()
        master.close()
