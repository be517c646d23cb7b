"""A cluster client: redis-py's RedisCluster with a capped retry policy and address remapping.

Only public redis-py API: redirects are counted on the servers (INFO errorstats), CLUSTER NODES is
read as raw text on a connection, and each retried attempt goes to the Retry's fail callback.

redis.cluster.RedisCluster is the maintained continuation of redis-py-cluster (which pins redis<4).
Nodes announce names (node-7000:7000) that resolve inside the compose network only; the remap
from lib.ha_client turns them into addresses this machine reaches (127.0.0.1, same port). The remap
is applied where a socket is opened (a Connection class), not to the names RedisCluster keeps:
redis-py 8.1.0 does not pass the node named in an ASK reply through address_remap, so a client that
renamed its nodes cannot find the ASK target (AttributeError on 'NoneType'); with the announced
names kept, MOVED and ASK name nodes the client knows, and only the TCP destination changes.
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.cluster import ClusterNode as StartupNode
from redis.cluster import RedisCluster
from redis.exceptions import ClusterDownError, ConnectionError, SlotNotCoveredError, TimeoutError
from redis.retry import Retry

from lib.clients.kept_clients import KeptClients
from lib.clients.topology_refresh import BackgroundRefresher, RefreshPolicy
from lib.errors import SetupError
from lib.ha_client import AddressRemap
from lib.history import Attempts
from lib.retry import RetryPolicy
from lib.topology.cluster_topology import Address, ClusterNode, Shard, read_cluster_nodes, shards_of
from lib.util import format_endpoint

T = TypeVar("T")

# RedisCluster (redis-py 8) re-reads the slot map after a connection error and retries at once,
# without sleeping; during a failover that is a spin. So each call gets up to RETRIES_PER_CALL
# extra attempts with exponential backoff (2 ms, 4 ms, ... capped at 50 ms), and RedisCluster
# itself retries nothing: each attempt is one command and one slot-map refresh (~5 ms on loopback).
# A failed call then takes ~20 ms, so after the promotion the client writes again within ~20 ms
# (measured with bench/failover_bench.py: it was ~40 ms with a 5 ms base and RedisCluster's own
# retry, which doubled the refreshes). Few retries, so an operation fails (and is counted) during
# an outage.
BACKOFF_CAP_S = 0.05
BACKOFF_BASE_S = 0.001
RETRIES_PER_CALL = 2
DEFAULT_REFRESH = RefreshPolicy()  # slot-map re-reads off the request path (lib/clients/topology_refresh.py)
RETRYABLE = (ConnectionError, TimeoutError, socket.timeout, ClusterDownError, SlotNotCoveredError)


def retry_policy() -> Retry:
    return Retry(ExponentialBackoff(cap=BACKOFF_CAP_S, base=BACKOFF_BASE_S), RETRIES_PER_CALL,
                 supported_errors=RETRYABLE)


class ClusterClient:
    """The harness's view of a cluster: a RedisCluster for data, plain clients for inspection."""

    def __init__(self, seeds: list[Address], *, password: str | None = None,
                 host_map: dict[str, str] | None = None, socket_timeout: float = 0.5,
                 client_name: str | None = None, refresh: RefreshPolicy | None = DEFAULT_REFRESH):
        if not seeds:
            raise SetupError("no cluster node given: use --node HOST:PORT")
        self.seeds = seeds
        self._seen: list[Address] = []  # reachable addresses of the nodes the last CLUSTER NODES named
        self.password = password
        self.socket_timeout = socket_timeout
        self.client_name = client_name  # set on every data connection: CLIENT LIST tells compared clients apart
        self.remap = AddressRemap(seeds[0][0], dict(host_map or {}))
        self.retry = retry_policy()
        self.refresh_policy = refresh  # None: redis-py's own refresh inside each failing request
        self.refresher: BackgroundRefresher | None = None
        self.fresh_map_retry: RetryPolicy | None = None  # with a refresher: retries wait for a fresh map
        self._cluster: RedisCluster | None = None
        self._views = KeptClients(self.node)  # nodes(): asked every 10-20 ms by the failover watch

    @property
    def cluster(self) -> RedisCluster:
        """The RedisCluster (connects on first use, so a bad --node becomes a one-line error)."""
        if self._cluster is None:
            try:
                # url= (a seed) makes RedisCluster build each node's pool from these keyword arguments,
                # connection_class included; without it, connection_class is not passed on (8.1.0).
                self._cluster = RedisCluster(
                    url=f"redis://{format_endpoint(*self.seeds[0])}",
                    startup_nodes=[StartupNode(host, port) for host, port in self.seeds[1:]],
                    password=self.password, decode_responses=True,
                    connection_class=remapping_connection(self.remap),
                    retry=Retry(NoBackoff(), 0),  # the retries (and their backoff) are ours, in call()
                    socket_timeout=self.socket_timeout, socket_connect_timeout=self.socket_timeout,
                    **({"client_name": self.client_name} if self.client_name else {}))
            except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
                raise SetupError(f"no cluster reachable at {', '.join(format_endpoint(*s) for s in self.seeds)}: "
                                 f"{exc} (start one: python app/stack.py up cluster, or docker-compose -f "
                                 "docker-compose.cluster.yml up -d; or pass --node HOST:PORT)") from None
            if self.refresh_policy is not None:
                self.refresher = BackgroundRefresher(self._cluster.nodes_manager, self.refresh_policy)
                refresher = self.refresher  # the wait between attempts is for a fresh slot map, not a sleep
                self.fresh_map_retry = RetryPolicy(RETRIES_PER_CALL, RETRYABLE,
                                                   lambda failures: refresher.wait_fresh(BACKOFF_CAP_S))
        return self._cluster

    def call(self, operation: Callable[[RedisCluster], T], attempts: Attempts | None = None) -> T:
        """Run operation(cluster) under the capped backoff policy; each failed attempt goes to attempts.

        With a background refresher, a retry after a connection error first waits (capped) for a slot-map
        read begun after the failure: retrying on the map that just failed would only fail again.
        """
        record = attempts.failed if attempts is not None else _ignore
        cluster = self.cluster  # connects (and starts the refresher) on first use
        if self.fresh_map_retry is None:
            return self.retry.call_with_retry(lambda: operation(cluster), record)
        return self.fresh_map_retry.call(lambda: operation(self.cluster), record)

    def node(self, address: Address, timeout: float = 1.0, *, decode: bool = True) -> redis.Redis:
        """A plain client to one node (reachable address), no retries: to inspect or to show MOVED/ASK.
        decode=False for binary replies (DUMP)."""
        return redis.Redis(host=address[0], port=address[1], password=self.password, decode_responses=decode,
                           retry=Retry(NoBackoff(), 0), socket_timeout=timeout, socket_connect_timeout=timeout)

    def reachable(self, node: ClusterNode) -> Address:
        return self.remap(node.announced)

    def nodes(self, via: list[Address] | None = None) -> list[ClusterNode]:
        """CLUSTER NODES from the first node that answers: via, else the seeds, then every node seen before.

        The nodes seen before matter once a seed is the node a fault killed (--node 127.0.0.1:7000
        and docker kill node-7000): cleanup and the rejoin check still reach the cluster.
        """
        errors = []
        candidates = via or list(dict.fromkeys([*self.seeds, *self._seen]))
        for address in candidates:
            try:
                found = read_cluster_nodes(self._views[address])
            except redis.RedisError as exc:
                errors.append(f"{format_endpoint(*address)}: {exc}")
                continue
            self._seen = [self.reachable(n) for n in found if not n.failed] or self._seen
            return found
        raise SetupError(f"no cluster node answered CLUSTER NODES: {'; '.join(errors)} (start the cluster: "
                         "python app/stack.py up cluster, or pass --node HOST:PORT)")

    def shards(self, via: list[Address] | None = None) -> list[Shard]:
        return shards_of(self.nodes(via))

    def redirects_sent(self, node: ClusterNode) -> Counter[str]:
        """MOVED and ASK replies the node has sent since it started (INFO errorstats: Redis 6.2+, Valkey).

        Counted on the server, so a check sees the redirects a client really got without hooking
        into the client; compare before and after. A server without errorstats counts 0.
        """
        with self.node(self.reachable(node)) as plain:
            stats = plain.info("errorstats")
        return Counter({kind: int(stats.get(f"errorstat_{kind}", {}).get("count", 0)) for kind in ("MOVED", "ASK")})

    def require_reachable(self, nodes: list[ClusterNode]) -> None:
        """Every node answers PING where the remap sends us: else a one-line SetupError with the fix."""
        for node in nodes:
            address = self.reachable(node)
            try:
                with self.node(address) as plain:
                    plain.ping()
            except redis.RedisError as exc:
                via = "" if address == node.announced else f" (reached at {format_endpoint(*address)})"
                raise SetupError(f"cluster node {format_endpoint(*node.announced)}{via} does not answer: {exc}; "
                                 "if the cluster announces addresses this machine cannot reach, map them with "
                                 f"--host-map {node.announced[0]}=HOST") from None

    def close(self) -> None:
        self._views.close()
        if self.refresher is not None:
            self.refresher.stop()
            self.refresher = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def __enter__(self) -> ClusterClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def remapping_connection(remap: Callable[[Address], Address]) -> type[redis.Connection]:
    """A redis.Connection class that dials remap((host, port)) for the address it is given."""

    class RemappedConnection(redis.Connection):
        def __init__(self, host: str = "localhost", port: int = 6379, **kwargs):
            host, port = remap((host, int(port)))
            super().__init__(host=host, port=port, **kwargs)

    return RemappedConnection


def _ignore(error: BaseException) -> None:
    """A Retry fail callback for calls whose attempts nobody records."""

