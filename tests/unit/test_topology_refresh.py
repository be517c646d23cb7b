"""BackgroundRefresher (lib/clients/topology_refresh.py) against a fake NodesManager: no server, no sleeps.

The fake stands in for redis-py's NodesManager: initialize() records what it was asked (kwargs, the
startup nodes it saw, the thread) and can swap in the next slot map; create_redis_node() hands out fake
clients whose ROLE answer the test sets, and whose pool answers CLUSTER NODES the way lib.util.raw_command
reads it (get_connection / send_command / read_response / release).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import pytest
from redis.exceptions import RedisClusterException

from lib import waits
from lib.clients.topology_refresh import BackgroundRefresher, RefreshPolicy
from lib.workload.cache_store import ClusterCacheStore

# Primary 7000 failed; 7003 and 7006 replicate it, 7007 did too but is flagged fail (never probed).
# Announced as node-700X, reached at 127.0.0.1 (remap_host_port), so node names are 127.0.0.1:700X.
NODES_TEXT = """\
a0 10.0.0.10:7000@17000,node-7000 master,fail - 0 0 1 connected 0-5460
b1 10.0.0.11:7001@17001,node-7001 myself,master - 0 0 2 connected 5461-16383
d3 10.0.0.13:7003@17003,node-7003 slave a0 0 0 1 connected
g6 10.0.0.16:7006@17006,node-7006 slave a0 0 0 1 connected
h7 10.0.0.17:7007@17007,node-7007 slave,fail a0 0 0 1 disconnected
e4 10.0.0.14:7004@17004,node-7004 slave b1 0 0 2 connected
"""
FAILED = "127.0.0.1:7000"
REPLICAS = ("127.0.0.1:7003", "127.0.0.1:7006")
FAST = RefreshPolicy(interval_s=0.001, full_every_s=30.0, unattributed_every_s=30.0)
DEADLINE_S = 2.0  # generous: only reached when a test fails


def eventually(check: Callable[[], tuple[bool, str]], what: str) -> str:
    """waits.wait_until with a 1 ms first poll; called through the module so the 50 ms unit-test cap
    (conftest) does not apply: these waits are for a thread, which a loaded machine may delay."""
    return waits.wait_until(check, timeout=DEADLINE_S, what=what,
                            policy=waits.PollPolicy(first=0.001, cap=0.01), transient=())


class FakeWorld:
    """What every fake client asks: each address's role, the CLUSTER NODES text, who asked what."""

    def __init__(self):
        self.roles: dict[str, str] = {}  # "host:port" -> "master" | "slave" (default slave)
        self.nodes_text = NODES_TEXT
        self.role_asked: dict[str, int] = {}
        self.role_threads: set[threading.Thread] = set()
        self.clients: list[FakeClient] = []
        self.lock = threading.Lock()

    def answer(self, name: str, *args: Any) -> Any:
        command = tuple(str(a).upper() for a in args)
        if command == ("ROLE",):
            with self.lock:
                self.role_asked[name] = self.role_asked.get(name, 0) + 1
                self.role_threads.add(threading.current_thread())
            if self.roles.get(name, "slave") == "master":
                return [b"master", 0, []]
            return [b"slave", b"127.0.0.1", 7000, b"connect", -1]
        if command == ("CLUSTER", "NODES"):
            return self.nodes_text.encode()
        raise AssertionError(f"the fake answers ROLE and CLUSTER NODES only, not {args}")


class FakeConnection:
    def __init__(self, client: FakeClient):
        self.client, self.sent = client, ()

    def send_command(self, *args: Any) -> None:
        self.sent = args

    def read_response(self) -> Any:
        return self.client.execute_command(*self.sent)

    def disconnect(self) -> None:
        pass


class FakePool:
    def __init__(self, client: FakeClient, host: str, port: int):
        self.client = client
        self.connection_kwargs = {"host": host, "port": port}

    def get_connection(self, *args: Any, **kwargs: Any) -> FakeConnection:
        return FakeConnection(self.client)

    def release(self, connection: FakeConnection) -> None:
        pass


class FakeClient:
    """A redis.Redis to one node: ROLE and CLUSTER NODES from the world; remembers close()."""

    def __init__(self, world: FakeWorld, host: str, port: int, **kwargs: Any):
        self.world, self.name, self.kwargs = world, f"{host}:{port}", kwargs
        self.connection_pool = FakePool(self, host, port)
        self.closed = False

    def execute_command(self, *args: Any) -> Any:
        return self.world.answer(self.name, *args)

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeNode:
    name: str
    redis_connection: FakeClient | None


@dataclass
class InitializeCall:
    kwargs: dict[str, Any]
    startup_nodes: list[str]
    thread: threading.Thread
    at: float


@dataclass
class FakeNodesManager:
    """The part of redis-py's NodesManager the refresher touches."""

    world: FakeWorld
    _dynamic_startup_nodes: bool = True
    calls: list[InitializeCall] = field(default_factory=list)
    next_maps: list[dict[int, list[FakeNode]]] = field(default_factory=list)  # one per call, then unchanged
    failures: int = 0  # the next this many calls raise, as redis-py's does when no startup node answers
    gate: threading.Event | None = None  # set: initialize() waits for it (a re-read in progress)
    entered: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self):
        self.connection_kwargs = {"socket_timeout": 0.5}
        self.created: list[tuple[str, int, dict[str, Any]]] = []
        self.nodes_cache = {name: self.node(name) for name in (FAILED, "127.0.0.1:7001", *REPLICAS)}
        self.slots_cache = {0: [self.nodes_cache[FAILED], self.nodes_cache[REPLICAS[0]]],
                            5461: [self.nodes_cache["127.0.0.1:7001"]]}
        self.startup_nodes = {FAILED: self.nodes_cache[FAILED]}
        self._lock = threading.RLock()

    def node(self, name: str) -> FakeNode:
        host, _, port = name.rpartition(":")
        return FakeNode(name, FakeClient(self.world, host, int(port)))

    def initialize(self, **kwargs: Any) -> None:
        with self._lock:
            self.calls.append(InitializeCall(kwargs, list(self.startup_nodes), threading.current_thread(),
                                             time.monotonic()))
        self.entered.set()
        if self.gate is not None and not self.gate.wait(DEADLINE_S):
            raise AssertionError("the test never opened the gate of a re-read")
        if self.failures:
            self.failures -= 1
            raise RedisClusterException("Redis Cluster cannot be connected. Please provide at least one reachable node")
        if self.next_maps:
            with self._lock:
                self.slots_cache = self.next_maps.pop(0)
                if self._dynamic_startup_nodes:  # as redis-py: all discovered nodes become the startup nodes
                    self.startup_nodes = dict(self.nodes_cache)

    def remap_host_port(self, host: str, port: int) -> tuple[str, int]:
        return ("127.0.0.1", port) if host.startswith("node-") else (host, port)

    def create_redis_node(self, host: str, port: int, **kwargs: Any) -> FakeClient:
        self.created.append((host, port, kwargs))
        client = FakeClient(self.world, host, port, **kwargs)
        self.world.clients.append(client)
        return client

    def promoted_map(self, name: str) -> dict[int, list[FakeNode]]:
        return {0: [self.nodes_cache[name]], 5461: [self.nodes_cache["127.0.0.1:7001"]]}


@pytest.fixture
def world() -> FakeWorld:
    return FakeWorld()


@pytest.fixture
def manager(world: FakeWorld) -> FakeNodesManager:
    return FakeNodesManager(world)


@pytest.fixture
def start():
    """start(manager, policy) -> a BackgroundRefresher, stopped (and its gate opened) after the test."""
    started: list[tuple[BackgroundRefresher, FakeNodesManager]] = []

    def make(manager: FakeNodesManager, policy: RefreshPolicy = FAST) -> BackgroundRefresher:
        refresher = BackgroundRefresher(manager, policy)
        started.append((refresher, manager))
        return refresher

    yield make
    for refresher, manager in started:
        if manager.gate is not None:
            manager.gate.set()
        refresher.stop()


def calls_reach(manager: FakeNodesManager, count: int) -> Callable[[], tuple[bool, str]]:
    return lambda: (len(manager.calls) >= count, f"{len(manager.calls)} initialize() calls")


def probes_reach(world: FakeWorld, count: int, *names: str) -> Callable[[], tuple[bool, str]]:
    return lambda: (all(world.role_asked.get(n, 0) >= count for n in names), f"ROLE asked: {world.role_asked}")


def test_ask_returns_at_once_and_the_reread_runs_on_the_refresher_thread(manager, start):
    manager.gate = threading.Event()  # a re-read that does not end until the test says so
    refresher = start(manager)
    began = time.monotonic()
    manager.initialize(last_failed_node_name=FAILED)  # what RedisCluster calls: now the refresher's ask()
    returned_in = time.monotonic() - began
    assert manager.entered.wait(DEADLINE_S), "the refresher never began the re-read that was asked for"
    assert returned_in < 0.5, f"ask() took {returned_in:.3f}s: it must note the wish and return at once"
    assert refresher.asked == 1, f"expected 1 ask counted, got {refresher.asked}"
    assert manager.calls[0].thread is not threading.current_thread(), "initialize() ran on the caller's thread"
    assert manager.calls[0].thread.name == "slot-map-refresher", f"ran on {manager.calls[0].thread.name}"
    manager.gate.set()
    eventually(lambda: (refresher.refreshes == 1, f"{refresher.refreshes} refreshes"), "the re-read to finish")


def test_replicas_are_probed_with_role_and_the_map_is_not_reread_while_they_say_slave(world, manager, start):
    refresher = start(manager)
    refresher.ask(last_failed_node_name=FAILED)
    eventually(probes_reach(world, 20, *REPLICAS), "20 ROLE probes of each replica of the failed primary")
    assert len(manager.calls) == 1, (f"expected only the first re-read while the replicas say slave, "
                                     f"got {len(manager.calls)}")
    assert "127.0.0.1:7007" not in world.role_asked, "a replica flagged fail was probed"
    assert FAILED not in world.role_asked, "the failed primary itself was probed"
    assert sorted((h, p) for h, p, _ in manager.created) == [("127.0.0.1", 7003), ("127.0.0.1", 7006)], (
        f"replica clients should be built at the remapped addresses, got {manager.created}")
    assert all(kw == manager.connection_kwargs for _, _, kw in manager.created), (
        f"replica clients should get the cluster's connection kwargs, got {manager.created}")
    assert refresher.probes >= 40, f"expected >= 40 probes counted, got {refresher.probes}"


def test_while_watching_the_whole_map_is_reread_every_full_every_s(world, manager, start):
    policy = RefreshPolicy(interval_s=0.001, full_every_s=0.05, unattributed_every_s=30.0)
    refresher = start(manager, policy)
    refresher.ask(last_failed_node_name=FAILED)
    eventually(calls_reach(manager, 3), "3 periodic re-reads while the replicas say slave")
    gaps = [b.at - a.at for a, b in pairwise(manager.calls)]
    assert all(gap >= policy.full_every_s - 0.005 for gap in gaps), (
        f"re-reads came closer than full_every_s={policy.full_every_s}s: gaps {gaps}")
    assert all(call.kwargs == {"disconnect_startup_nodes_pools": False} for call in manager.calls), (
        f"periodic re-reads should keep the pooled connections: {[c.kwargs for c in manager.calls]}")
    assert all(call.startup_nodes == [FAILED] for call in manager.calls), "a periodic re-read changed startup nodes"


@pytest.mark.parametrize("dynamic", [False, True], ids=["fixed-startup-nodes", "dynamic-startup-nodes"])
def test_a_promoted_replica_is_asked_first_in_one_reread_and_the_watch_ends(world, manager, start, dynamic):
    manager._dynamic_startup_nodes = dynamic
    user_startup_nodes = manager.startup_nodes
    refresher = start(manager)
    refresher.ask(last_failed_node_name=FAILED)
    eventually(probes_reach(world, 3, *REPLICAS), "the replicas to be watched")
    promoted = REPLICAS[1]
    manager.next_maps.append(manager.promoted_map(promoted))
    world.roles[promoted] = "master"
    eventually(lambda: (all(c.closed for c in world.clients), f"closed: {[c.closed for c in world.clients]}"),
               "the watch to end (its replica clients closed) once the map names the promoted replica")

    assert len(manager.calls) == 2, f"expected the first re-read and one after the promotion, got {manager.calls}"
    after = manager.calls[1]
    assert after.startup_nodes == [promoted], f"the promoted replica should be the only startup node: {after}"
    assert after.kwargs == {"disconnect_startup_nodes_pools": False}, f"unexpected kwargs {after.kwargs}"
    assert manager.slots_cache[0][0].name == promoted, "the fake did not install the new map"
    if dynamic:
        assert manager.startup_nodes is not user_startup_nodes, "dynamic startup nodes were put back"
        assert sorted(manager.startup_nodes) == sorted(manager.nodes_cache), (
            f"the re-read's discovered nodes should stay the startup nodes: {sorted(manager.startup_nodes)}")
    else:
        assert manager.startup_nodes is user_startup_nodes, (
            f"the user's fixed startup nodes were not put back: {sorted(manager.startup_nodes)}")

    probes, calls = refresher.probes, len(manager.calls)
    assert refresher.wait_fresh(DEADLINE_S), "no look at the cluster after the watch ended"
    assert (refresher.probes, len(manager.calls)) == (probes, calls), (
        f"the watch went on after the map changed: probes {probes} -> {refresher.probes}, "
        f"re-reads {calls} -> {len(manager.calls)}")


def test_a_promotion_the_reread_does_not_show_yet_is_reread_again_each_tick(world, manager, start):
    refresher = start(manager)
    refresher.ask(last_failed_node_name=FAILED)
    eventually(probes_reach(world, 1, *REPLICAS), "the replicas to be watched")
    promoted = REPLICAS[0]
    stale = dict(manager.slots_cache)
    manager.next_maps.extend([stale, stale, manager.promoted_map(promoted)])  # 2 answers before the news
    world.roles[promoted] = "master"
    eventually(lambda: (all(c.closed for c in world.clients), f"{len(manager.calls)} re-reads"),
               "the watch to end once a re-read shows the promotion")
    assert len(manager.calls) == 4, f"expected 1 first + 3 after the promotion, got {len(manager.calls)}"
    assert all(c.startup_nodes == [promoted] for c in manager.calls[1:]), (
        f"each re-read after the promotion should ask the promoted node first: {manager.calls[1:]}")


def test_unattributed_asks_are_rate_limited_to_unattributed_every_s(manager, start):
    policy = RefreshPolicy(interval_s=0.001, full_every_s=30.0, unattributed_every_s=0.1)
    refresher = start(manager, policy)
    refresher.ask()  # MOVED or a timeout: no node named
    eventually(calls_reach(manager, 1), "the first unattributed re-read (none was done before)")
    for _ in range(5):
        refresher.ask()
    eventually(calls_reach(manager, 2), "the deferred unattributed re-read")
    gap = manager.calls[1].at - manager.calls[0].at
    assert gap >= policy.unattributed_every_s - 0.005, f"unattributed re-reads only {gap:.3f}s apart"
    assert refresher.wait_fresh(DEADLINE_S), "no look after the deferred re-read"
    assert len(manager.calls) == 2, f"6 asks should give 2 re-reads (1 + 5 merged), got {len(manager.calls)}"
    assert refresher.asked == 6, f"expected 6 asks counted, got {refresher.asked}"
    assert manager.calls[1].startup_nodes == [FAILED], "an unattributed re-read changed the startup nodes"


def test_wait_fresh_waits_for_a_look_that_began_after_the_call(manager, start):
    policy = RefreshPolicy(interval_s=0.001, full_every_s=30.0, unattributed_every_s=0.0)
    manager.gate = threading.Event()
    refresher = start(manager, policy)
    refresher.ask()
    assert manager.entered.wait(DEADLINE_S), "the first re-read never began"
    # a look in progress when wait_fresh is called does not count: nothing else runs, so it times out
    began = time.monotonic()
    assert refresher.wait_fresh(0.05) is False, "wait_fresh counted a look that began before the call"
    assert time.monotonic() - began >= 0.045, "wait_fresh returned False before its timeout"

    fresh: list[bool] = []
    waiter_started = threading.Event()

    def wait() -> None:
        waiter_started.set()
        fresh.append(refresher.wait_fresh(DEADLINE_S))

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    assert waiter_started.wait(DEADLINE_S)
    manager.entered.clear()
    refresher.ask()  # the next look re-reads too, and stays in progress until the gate opens again
    first_gate, manager.gate = manager.gate, threading.Event()  # the second re-read waits on a gate of its own
    first_gate.set()  # the first re-read ends ...
    second_gate = manager.gate
    assert manager.entered.wait(DEADLINE_S), "the second re-read never began"
    assert not fresh, f"wait_fresh returned {fresh} when a look that began before it ended"
    second_gate.set()  # ... and the one that began after the call ends: the waiter returns True
    waiter.join(DEADLINE_S)
    assert fresh == [True], f"wait_fresh should return True after a look begun after it, got {fresh}"


def test_wait_fresh_returns_true_at_once_after_stop(manager, start):
    refresher = start(manager)
    assert refresher.wait_fresh(DEADLINE_S), "an idle refresher should look when asked to"
    refresher.stop()
    began = time.monotonic()
    assert refresher.wait_fresh(DEADLINE_S) is True, "wait_fresh after stop() should not report a timeout"
    assert time.monotonic() - began < 0.5, "wait_fresh after stop() waited for a look that will not come"


def test_stop_releases_a_caller_already_in_wait_fresh(manager, start):
    manager.gate = threading.Event()
    refresher = start(manager)
    refresher.ask()
    assert manager.entered.wait(DEADLINE_S)
    fresh: list[bool] = []
    waiter = threading.Thread(target=lambda: fresh.append(refresher.wait_fresh(30.0)), daemon=True)
    waiter.start()
    stopper = threading.Thread(target=refresher.stop, daemon=True)
    stopper.start()
    eventually(lambda: (bool(fresh), "waiter still waiting"), "stop() to release the waiter")
    manager.gate.set()
    stopper.join(DEADLINE_S)
    assert fresh == [True], f"a waiter released by stop() got {fresh}"


def test_wait_fresh_returns_at_once_after_a_stop_that_came_during_a_look(manager, start):
    manager.gate = threading.Event()
    refresher = start(manager)
    refresher.ask()
    assert manager.entered.wait(DEADLINE_S)
    stopper = threading.Thread(target=refresher.stop, daemon=True)
    stopper.start()  # stop() while the re-read is in progress; it joins the thread
    eventually(lambda: (refresher._halt.is_set(), "not halted yet"), "stop() to begin")
    manager.gate.set()
    stopper.join(DEADLINE_S)
    began = time.monotonic()
    refresher.wait_fresh(0.3)
    assert time.monotonic() - began < 0.2, "wait_fresh after stop() waited for a look that will not come"


def test_a_reread_that_raises_is_counted_and_the_thread_goes_on(manager, start):
    policy = RefreshPolicy(interval_s=0.001, full_every_s=30.0, unattributed_every_s=0.0)
    manager.failures = 1
    refresher = start(manager, policy)
    refresher.ask()
    eventually(lambda: (refresher.errors == 1, f"{refresher.errors} errors"), "the failed re-read to be counted")
    assert refresher.refreshes == 0, f"a re-read that raised was counted as done: {refresher.refreshes}"
    thread = manager.calls[0].thread
    assert thread.is_alive(), "the refresher thread died with the re-read"
    refresher.ask()
    eventually(lambda: (refresher.refreshes == 1, f"{refresher.refreshes} refreshes, {refresher.errors} errors"),
               "the next ask's re-read")
    assert manager.calls[1].thread is thread and thread.is_alive(), "the next re-read ran on another thread"


def test_a_failed_first_reread_puts_fixed_startup_nodes_back(world, manager, start):
    manager._dynamic_startup_nodes = False
    user_startup_nodes = manager.startup_nodes
    refresher = start(manager)
    refresher.ask(last_failed_node_name=FAILED)
    eventually(probes_reach(world, 1, *REPLICAS), "the replicas to be watched")
    manager.failures = 1
    world.roles[REPLICAS[0]] = "master"
    eventually(lambda: (refresher.errors == 1, f"{refresher.errors} errors"), "the failed re-read")
    assert manager.calls[1].startup_nodes == [REPLICAS[0]], f"the promoted node was not asked: {manager.calls[1]}"
    assert manager.startup_nodes is user_startup_nodes, "fixed startup nodes were not put back after an error"


def test_a_failed_first_reread_does_not_leave_only_the_promoted_node_to_ask(world, manager, start):
    manager._dynamic_startup_nodes = True
    refresher = start(manager)
    refresher.ask(last_failed_node_name=FAILED)
    eventually(probes_reach(world, 1, *REPLICAS), "the replicas to be watched")
    manager.failures = 1_000_000  # every re-read fails: only the put-back can undo the swap
    world.roles[REPLICAS[0]] = "master"
    eventually(lambda: (refresher.errors >= 1, f"{refresher.errors} errors"), "a failed re-read")
    refresher.stop()  # joins the thread: no re-read is half-way when the startup nodes are looked at
    assert set(manager.startup_nodes) != {REPLICAS[0]}, (
        f"after a failed re-read the only startup node is the promoted one: {sorted(manager.startup_nodes)}")


def test_stop_ends_the_thread_and_closes_the_replica_clients(world, manager, start):
    refresher = start(manager)
    refresher.ask(last_failed_node_name=FAILED)
    eventually(probes_reach(world, 1, *REPLICAS), "the replicas to be watched")
    assert len(world.clients) == 2 and not any(c.closed for c in world.clients), "expected 2 open replica clients"
    refresher.stop()
    assert not any(t.is_alive() for t in world.role_threads), "the refresher thread outlived stop()"
    assert all(c.closed for c in world.clients), f"replica clients left open: {[c.name for c in world.clients]}"


def test_no_known_replica_gets_rate_limited_rereads(world, manager, start):
    world.nodes_text = NODES_TEXT.replace(" slave a0 ", " slave zz ")  # nobody replicates the failed primary
    policy = RefreshPolicy(interval_s=0.001, full_every_s=30.0, unattributed_every_s=0.05)
    refresher = start(manager, policy)
    refresher.ask(last_failed_node_name=FAILED)
    eventually(calls_reach(manager, 3), "re-reads while no replica can be watched")
    gaps = [b.at - a.at for a, b in pairwise(manager.calls)]
    assert all(gap >= policy.unattributed_every_s - 0.005 for gap in gaps), f"re-reads too close: {gaps}"
    assert refresher.probes == 0, f"{refresher.probes} probes with no replica to probe"


class FakeRedisCluster:
    """Just what ClusterCacheStore's constructor, refreshes() and close() touch."""

    def __init__(self, nodes_manager: FakeNodesManager):
        self.nodes_manager = nodes_manager
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_cluster_cache_store_counts_inline_rereads_without_a_refresher(manager):
    store = ClusterCacheStore(FakeRedisCluster(manager), "cache:", refresh=None)  # type: ignore[arg-type]
    manager.initialize(last_failed_node_name=FAILED)
    manager.initialize()
    assert store.refreshes() == 2, f"expected 2 inline re-reads counted, got {store.refreshes()}"
    assert [c.thread for c in manager.calls] == [threading.current_thread()] * 2, (
        "with refresh=None the re-read should stay inline, on the caller's thread")
    store.close()


def test_cluster_cache_store_counts_background_rereads_with_a_refresher(manager):
    store = ClusterCacheStore(FakeRedisCluster(manager), "cache:", refresh=FAST)  # type: ignore[arg-type]
    try:
        manager.initialize()
        eventually(lambda: (store.refreshes() == 1, f"{store.refreshes()} refreshes"), "the background re-read")
        assert manager.calls[0].thread is not threading.current_thread(), "the re-read ran inline"
    finally:
        store.close()
