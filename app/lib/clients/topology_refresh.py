"""A policy for re-reading a cluster's slot map: off the request path, cheap while waiting, bounded.

redis-py's RedisCluster re-reads the slot map (NodesManager.initialize: CLUSTER SLOTS, new node objects)
inside the request that hit a connection error, every time, and drops the pooled connections of the node
it asked. During a failover every request to the failed shard does that: a refresh storm that also slows
the healthy shards (the cache store's fell from 96 to 57 requests/s, 218 re-reads in a 3.3 s outage).
Re-reading the whole map every 5 ms from a background thread instead still cost the healthy shards ~24%
of their rate (measured: 351 re-reads in 3.1 s, each ~2 ms of the one interpreter lock).

So, with this policy, a request that fails only asks for a refresh and fails at once. One background
thread then watches the failed primary's replicas with ROLE (a few bytes) every `interval_s`; the moment
one says it is a primary, it re-reads the map once (and again each tick until the map shows the change).
A failure it cannot attribute to a node (MOVED, a timeout elsewhere) gets a full re-read, at most once per
interval; while watching, a full re-read also comes every `full_every_s`, in case the change is another.
A healthy shard's requests never run a refresh, and the map is right within about one interval of the
promotion (the goal: writing again ≤ 10 ms after it).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.cluster import ClusterNode as RedisClusterNode

from lib.topology.cluster_topology import read_cluster_nodes

INTERVAL_S = 0.002
NOTHING_TO_WATCH = "nothing to watch"  # no replica of the failed primary is known: only re-reads tell
Address = tuple[str, int]


@dataclass(frozen=True)
class RefreshPolicy:
    interval_s: float = INTERVAL_S  # how often the failed primary's replicas are asked while requests fail
    full_every_s: float = 0.5  # a whole-map re-read at least this often while watching
    unattributed_every_s: float = 0.05  # the most often a failure without a node (MOVED, slot not covered)
    # gets a whole-map re-read: each costs ~2 ms of the interpreter lock, which the healthy shards need
    keep_connections: bool = True  # do not drop the asked node's pooled connections on each re-read


class BackgroundRefresher:
    """Owns a RedisCluster's slot-map refreshes: installs itself in place of NodesManager.initialize."""

    def __init__(self, nodes_manager: Any, policy: RefreshPolicy = RefreshPolicy()):
        self.policy, self.nodes = policy, nodes_manager
        self.refreshes = 0  # whole-map re-reads done (each is one CLUSTER SLOTS)
        self.probes = 0  # ROLE asked of a replica while watching
        self.asked = 0  # refreshes the requests asked for
        self.errors = 0  # re-reads that raised (no node answered): the next ask tries again
        self._initialize: Callable[..., None] = nodes_manager.initialize
        self._failed: set[str] = set()  # primaries a request could not reach ("host:port")
        self._watched: dict[str, tuple[int | None, list[Any]]] = {}  # failed primary -> (a slot, its replicas)
        self._unattributed = False  # a refresh was asked for without a failed node
        self._last_full = 0.0
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._halt = threading.Event()
        self._ticks_started = 0
        self._ticks_done = 0
        self._done = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True, name="slot-map-refresher")
        nodes_manager.initialize = self.ask
        self._thread.start()

    def ask(self, *args, last_failed_node_name: str | None = None, **kwargs) -> None:
        """What RedisCluster calls instead of initialize(): note the wish (and the node) and return at once."""
        with self._lock:
            self.asked += 1
            if last_failed_node_name:
                self._failed.add(last_failed_node_name)
            else:
                self._unattributed = True
        self._wanted.set()

    def wait_fresh(self, timeout: float) -> bool:
        """Wait until a look at the cluster that began after this call has finished: the map then holds what
        the cluster said after the caller's failure. A retry waits for this, not a blind backoff, so the
        first attempt after a promotion is the one right after it is seen. False: none within timeout."""
        with self._done:
            wanted = self._ticks_started + 1
            self._wanted.set()
            return self._done.wait_for(lambda: self._ticks_done >= wanted, timeout)

    def _run(self) -> None:
        while not self._halt.is_set():
            if not self._wanted.wait(0.5):  # idle: wake up now and then to see the halt
                continue
            if self._halt.is_set():
                return
            self._wanted.clear()
            with self._done:
                self._ticks_started += 1
                tick = self._ticks_started
            try:
                if self._tick():
                    self._wanted.set()  # still watching: come back after the interval
            except Exception:  # noqa: BLE001 - one bad look (a node's odd reply) must not end the thread
                self.errors += 1
                self._wanted.set()
            finally:
                with self._done:  # max: stop() may have released every waiter meanwhile
                    self._ticks_done = max(self._ticks_done, tick)
                    self._done.notify_all()
            self._halt.wait(self.policy.interval_s)  # the rate limit, not a synchronisation

    def _tick(self) -> bool:
        """One look; True while a failed primary still owns its slots in the map, or they have no owner."""
        with self._lock:
            failed, unattributed = set(self._failed), self._unattributed
            self._unattributed = False
        for name in failed - self._watched.keys():
            self._watched[name] = self._watch(name)
        since_full = time.monotonic() - self._last_full
        promoted = next((p for name in failed if (p := self._promoted(name)) is not None), None)
        if promoted is not None and promoted != NOTHING_TO_WATCH:
            self._full(first=promoted)
        elif (promoted == NOTHING_TO_WATCH or (unattributed and since_full >= self.policy.unattributed_every_s)
                or (failed and since_full >= self.policy.full_every_s)):
            self._full()
        elif unattributed:
            with self._lock:
                self._unattributed = True  # not yet: the rate limit keeps it for a later tick
        still = {name for name in failed if self._still_failed(name)}
        with self._lock:
            self._failed -= failed - still
        for name in failed - still:
            self._close(self._watched.pop(name, None))
        return bool(still) or self._unattributed

    def _watch(self, name: str) -> tuple[int | None, list[Any]]:
        """When a primary first fails: one of its slots (one pass over the map, not one per tick: scanning
        all 16,384 slots every 5 ms took the interpreter lock from the healthy shards), and clients to its
        replicas, from CLUSTER NODES of a node that answers (CLUSTER SLOTS leaves out a replica that has
        not synced a write yet, so the map may name none)."""
        slot = None
        with contextlib.suppress(Exception):
            slot = next((s for s, nodes in list(self.nodes.slots_cache.items()) if nodes and nodes[0].name == name),
                        None)
        return slot, self._replica_clients(name)

    def _replica_clients(self, name: str) -> list[Any]:
        for other in list(self.nodes.nodes_cache.values()):
            if other.name == name or other.redis_connection is None:
                continue
            try:
                view = read_cluster_nodes(other.redis_connection)
            except Exception:  # noqa: BLE001 - try the next node
                continue
            by_name = {self._name(n): n for n in view}
            primary = by_name.get(name)
            if primary is None:
                return []
            kwargs = dict(self.nodes.connection_kwargs)
            return [self.nodes.create_redis_node(*self.nodes.remap_host_port(*n.announced), **kwargs)
                    for n in view if n.master_id == primary.node_id and not n.failed]
        return []

    def _name(self, node: Any) -> str:
        host, port = self.nodes.remap_host_port(*node.announced)
        return f"{host}:{port}"

    @staticmethod
    def _close(watch: tuple[int | None, list[Any]] | None) -> None:
        for client in (watch or (None, []))[1]:
            with contextlib.suppress(Exception):
                client.close()

    def _full(self, first: Address | None = None) -> None:
        """A whole-map re-read. first: a node just promoted, asked before any other. redis-py keeps the
        first answer that covers every slot, and a node that has not heard of the promotion yet still
        names the old primary: asked first, the new primary's own answer is the one kept."""
        kwargs: dict[str, Any] = {"disconnect_startup_nodes_pools": False} if self.policy.keep_connections else {}
        self._last_full = time.monotonic()
        saved = None
        if first is not None:
            with self.nodes._lock:  # initialize() reads startup_nodes under this lock too
                saved = self.nodes.startup_nodes
                self.nodes.startup_nodes = {f"{first[0]}:{first[1]}": RedisClusterNode(first[0], first[1])}
        failed = True
        try:
            self._initialize(**kwargs)
            failed = False
        except Exception:  # noqa: BLE001 - no node answered: the map stays, the next tick tries again
            pass
        finally:
            # put the startup nodes back when the user fixed them, and when the re-read failed (redis-py
            # replaces them only after a good one): else the promoted node would be the only one ever asked
            if saved is not None and (failed or not getattr(self.nodes, "_dynamic_startup_nodes", True)):
                with self.nodes._lock:
                    self.nodes.startup_nodes = saved
        if failed:  # counted once the state is whole again: a reader of the counters sees it settled
            self.errors += 1
        else:
            self.refreshes += 1

    def _still_failed(self, name: str) -> bool:
        """The map still sends the failed primary's slot to it, or to nobody (flagged FAIL, not yet replaced)."""
        slot = self._watched.get(name, (None, []))[0]
        if slot is None:
            return False
        with contextlib.suppress(Exception):
            nodes = self.nodes.slots_cache.get(slot)
            return not nodes or nodes[0].name == name
        return False

    def _promoted(self, failed: str) -> Address | str | None:
        """The replica of the failed primary that says it is a primary now (a cheap ROLE each), else None;
        NOTHING_TO_WATCH when no replica is known and a re-read is due."""
        replicas = self._watched.get(failed, (None, []))[1]
        if not replicas:
            due = time.monotonic() - self._last_full >= self.policy.unattributed_every_s
            return NOTHING_TO_WATCH if due else None
        for client in replicas:
            self.probes += 1
            try:
                role = client.execute_command("ROLE")
            except Exception:  # noqa: BLE001 - a replica down too: the others (or the full re-read) tell
                continue
            first = role[0] if role else b""
            if (first.decode() if isinstance(first, bytes) else str(first)) == "master":
                settings = client.connection_pool.connection_kwargs
                return settings["host"], int(settings["port"])
        return None

    def stop(self) -> None:
        self._halt.set()
        self._wanted.set()
        with self._done:  # nobody waits for a look that will not come
            self._ticks_done = self._ticks_started + 1_000_000
            self._done.notify_all()
        with contextlib.suppress(RuntimeError):
            self._thread.join(2)
        for watch in list(self._watched.values()):
            self._close(watch)
        self._watched.clear()
