"""A policy for re-reading a cluster's slot map: off the request path, at most once per interval.

redis-py's RedisCluster re-reads the slot map (NodesManager.initialize: CLUSTER SLOTS) inside the
request that hit a connection error, every time, and drops the pooled connections of the node it asked.
During a failover every request to the failed shard does that: a refresh storm, which also makes the
requests of the healthy shards reconnect (the cache store's healthy shards slowed from 96 to 57 req/s,
218 refreshes in a 3.3 s outage). And a request waits for its own refresh before it can fail.

With this policy the request only asks for a refresh and fails at once; one background thread refreshes
at most once per `interval_s` while asks keep coming, without dropping the asked node's connections.
So a promotion is seen within about one interval (the goal: writing again ≤ 10 ms after it), the number
of refreshes is bounded by the outage's length, and a healthy shard's requests never run one.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

INTERVAL_S = 0.005


@dataclass(frozen=True)
class RefreshPolicy:
    interval_s: float = INTERVAL_S  # the most often the slot map is re-read while requests keep failing
    keep_connections: bool = True  # do not drop the asked node's pooled connections on each refresh


class BackgroundRefresher:
    """Owns a RedisCluster's slot-map refreshes: installs itself in place of NodesManager.initialize."""

    def __init__(self, nodes_manager: object, policy: RefreshPolicy = RefreshPolicy()):
        self.policy = policy
        self.refreshes = 0  # slot-map reads done (each is one CLUSTER SLOTS)
        self.asked = 0  # refreshes the requests asked for
        self.errors = 0  # refreshes that raised (no node answered): the next ask tries again
        self._started = 0  # refreshes begun (each reads the map after it began)
        self._finished = 0
        self._done = threading.Condition()
        self._initialize: Callable[..., None] = nodes_manager.initialize  # type: ignore[attr-defined]
        self._wanted = threading.Event()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="slot-map-refresher")
        nodes_manager.initialize = self.ask  # type: ignore[attr-defined]
        self._thread.start()

    def ask(self, *args, **kwargs) -> None:
        """What RedisCluster calls instead of initialize(): note the wish and return at once."""
        self.asked += 1
        self._wanted.set()

    def wait_fresh(self, timeout: float) -> bool:
        """Wait until a refresh that began after this call has finished: the map then reflects what the
        cluster said after the caller's failure. A retry waits for this, not a blind backoff, so the first
        attempt after a promotion is the one right after the map shows it. False: none within timeout."""
        with self._done:
            wanted = self._started + 1
            self._wanted.set()
            return self._done.wait_for(lambda: self._finished >= wanted, timeout)

    def refresh_now(self) -> None:
        """One slot-map read on the caller's thread (a setup step that needs the fresh map now)."""
        self._refresh()

    def _refresh(self) -> None:
        kwargs = {"disconnect_startup_nodes_pools": False} if self.policy.keep_connections else {}
        with self._done:
            self._started += 1
            number = self._started
        try:
            self._initialize(**kwargs)
            self.refreshes += 1
        except Exception:  # noqa: BLE001 - no node answered: the map stays, the next ask retries
            self.errors += 1
        finally:
            with self._done:
                self._finished = number
                self._done.notify_all()

    def _run(self) -> None:
        while not self._halt.is_set():
            if not self._wanted.wait(0.5):  # idle: wake up now and then to see the halt
                continue
            if self._halt.is_set():
                return
            self._wanted.clear()
            self._refresh()
            self._halt.wait(self.policy.interval_s)  # the rate limit, not a synchronisation

    def stop(self) -> None:
        self._halt.set()
        self._wanted.set()
        with self._done:  # nobody waits for a refresh that will not come
            self._finished = self._started + 1_000_000
            self._done.notify_all()
        with contextlib.suppress(RuntimeError):
            self._thread.join(2)
