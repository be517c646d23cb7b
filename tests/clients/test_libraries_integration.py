"""The compared client libraries on real local stacks: each one writes through Sentinel and through the
cluster from several threads at once (one shared client), names its connections, and GLIDE's sentinel
rebuild follows a SENTINEL FAILOVER to the new master."""

from __future__ import annotations

import threading

import pytest
import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from lib.clients.libraries import base
from lib.history import ClientOpError
from lib.waits import PollPolicy, wait_until

pytestmark = pytest.mark.integration

MASTER_NAME = "myvalkey"
LIBRARIES = (base.REDIS_PY, base.VALKEY_PY, base.GLIDE)
KEYS, WRITERS = 100, 4


def node_client(address: tuple[str, int]) -> redis.Redis:
    """One attempt per command: the test's own reads should not hide a failure behind retries."""
    return redis.Redis(*address, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0),
                       decode_responses=True)


def sentinel_target(stack) -> base.SentinelTarget:
    return base.SentinelTarget(stack.endpoints("sentinel"), MASTER_NAME, lambda address: address)


def master_of(stack) -> tuple[str, int]:
    sentinel = node_client(stack.endpoints("sentinel")[0])
    try:
        host, port = sentinel.sentinel_get_master_addr_by_name(MASTER_NAME)
        return host, int(port)
    finally:
        sentinel.close()


def write_keys(client, prefix: str) -> dict[str, str]:
    """KEYS keys written by WRITERS threads through the one client, as the writer loops share it."""
    written: dict[str, str] = {}
    errors: list[ClientOpError] = []

    def writer(first: int) -> None:
        for i in range(first, KEYS, WRITERS):
            key, value = f"{prefix}{i}", f"v{i}"
            try:
                client.set(key, value)
                written[key] = value
            except ClientOpError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, f"{client.name}: writes failed on a healthy stack: {errors[:3]}"
    assert len(written) == KEYS, f"{client.name}: {len(written)} of {KEYS} writes returned"
    return written


def names_in(client_list: list[dict]) -> set[str]:
    return {entry["name"] for entry in client_list if entry.get("name")}


def check_library(client, name: str) -> None:
    assert client.name == name, client.name
    assert client.version not in ("", "not installed"), f"{name}: version {client.version!r}"
    assert client.notes and all(isinstance(note, str) and note for note in client.notes), client.notes


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_library_writes_through_sentinel_and_names_its_connections(ha_stack, library):
    prefix, client_name = f"vhc:test:libs:{library}:", f"vhc-test-{library}"
    client = base.open_sentinel(library, sentinel_target(ha_stack), client_name)
    master = node_client(master_of(ha_stack))
    try:
        check_library(client, library)
        written = write_keys(client, prefix)
        assert names_in(master.client_list()) >= {client_name}, (
            f"{library}: CLIENT LIST on the master shows {sorted(names_in(master.client_list()))}")
        refreshes = client.refreshes()
        assert refreshes is not None and refreshes >= 1, f"{library}: at least one master lookup, saw {refreshes}"
        client.close()
        assert {key: master.get(key) for key in written} == written, f"{library}: not every write is on the master"
    finally:
        master.delete(*[f"{prefix}{i}" for i in range(KEYS)])
        master.close()


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_library_writes_through_the_cluster_and_names_its_connections(cluster_stack, library):
    prefix, client_name = f"vhc:test:libs:{library}:", f"vhc-test-{library}"
    seeds = cluster_stack.endpoints("server")
    client = base.open_cluster(library, base.ClusterTarget(seeds, {}), client_name)
    reader = RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in seeds], decode_responses=True)
    try:
        check_library(client, library)
        written = write_keys(client, prefix)
        for primary in reader.get_primaries():
            names = names_in(reader.get_redis_connection(primary).client_list())
            assert client_name in names, f"{library}: CLIENT LIST on {primary.name} shows {sorted(names)}"
        refreshes = client.refreshes()
        assert refreshes is None if library == base.GLIDE else refreshes == 0, (
            f"{library}: no slot map reload on a stable cluster, saw {refreshes}")
        client.close()
        assert {key: reader.get(key) for key in written} == written, f"{library}: not every write is in the cluster"
    finally:
        for i in range(KEYS):
            reader.delete(f"{prefix}{i}")
        reader.close()


def test_glide_follows_a_sentinel_failover_to_the_new_master(ha_stack):
    client = base.open_sentinel(base.GLIDE, sentinel_target(ha_stack), "vhc-test-glide-failover")
    old = master_of(ha_stack)
    sentinel, old_master = node_client(ha_stack.endpoints("sentinel")[0]), node_client(old)
    try:
        client.set("vhc:test:libs:failover", "before")

        def failover_accepted() -> tuple[bool, str]:  # NOGOODSLAVE until the sentinel has its replicas' INFO
            sentinel.execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
            return True, "accepted"

        wait_until(failover_accepted, timeout=15, what="a sentinel to accept SENTINEL FAILOVER",
                   policy=PollPolicy(first=0.05, cap=0.1))
        seq = iter(range(1_000_000))

        def writes_on_the_new_master() -> tuple[bool, str]:
            role = old_master.info("replication")["role"]
            try:
                client.set("vhc:test:libs:failover", f"after-{next(seq)}")
            except ClientOpError as exc:
                return False, f"old master is {role}; set: {exc.outcome} {exc}"
            return role == "slave", f"old master is {role}; set ok"

        wait_until(writes_on_the_new_master, timeout=20, what="GLIDE to write on the new master")
        new = master_of(ha_stack)
        assert new != old, f"the sentinels still name {old}"
        assert node_client(new).get("vhc:test:libs:failover").startswith("after-"), "the write is on the new master"
        assert client.refreshes() >= 2, f"a lookup after the failover, saw {client.refreshes()}"
    finally:
        client.close()
        node_client(master_of(ha_stack)).delete("vhc:test:libs:failover")
        sentinel.close()
        old_master.close()
