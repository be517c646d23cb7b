"""A cluster client: redis-py's RedisCluster with a capped retry policy and address remapping.

redis.cluster.RedisCluster is the maintained continuation of redis-py-cluster (which pins redis<4).
Nodes announce names (node-7000:7000) that resolve inside the compose network only; the remap
from lib.ha_client turns them into addresses this machine reaches (127.0.0.1, same port).
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

from lib.cluster_topology import Address, ClusterNode, Shard, parse_cluster_nodes, shards_of
from lib.ha_client import AddressRemap
from lib.report import SetupError
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
RETRYABLE = (ConnectionError, TimeoutError, socket.timeout, ClusterDownError, SlotNotCoveredError)


def retry_policy() -> Retry:
    return Retry(ExponentialBackoff(cap=BACKOFF_CAP_S, base=BACKOFF_BASE_S), RETRIES_PER_CALL,
                 supported_errors=RETRYABLE)


class CountingRedisCluster(RedisCluster):
    """RedisCluster that counts the redirects it follows (MOVED, ASK) for the report.

    redis-py records every MOVED/ASK it handles through _record_error_metric (8.x); counting there
    sees the real redirects without re-implementing the redirect loop.
    """

    def __init__(self, *args, **kwargs):
        self.redirects: Counter[str] = Counter()
        super().__init__(*args, **kwargs)

    def _record_error_metric(self, error, *args, **kwargs):  # noqa: ANN001 - redis-py's signature
        name = type(error).__name__
        if name in ("MovedError", "AskError"):
            self.redirects[name.removesuffix("Error").upper()] += 1
        return super()._record_error_metric(error, *args, **kwargs)


class ClusterClient:
    """The harness's view of a cluster: a RedisCluster for data, plain clients for inspection."""

    def __init__(self, seeds: list[Address], *, password: str | None = None,
                 host_map: dict[str, str] | None = None, socket_timeout: float = 0.5):
        if not seeds:
            raise SetupError("no cluster node given: use --node HOST:PORT")
        self.seeds = seeds
        self.password = password
        self.socket_timeout = socket_timeout
        self.remap = AddressRemap(seeds[0][0], dict(host_map or {}))
        self.retry = retry_policy()
        self._cluster: CountingRedisCluster | None = None

    @property
    def cluster(self) -> CountingRedisCluster:
        """The RedisCluster (connects on first use, so a bad --node becomes a one-line error)."""
        if self._cluster is None:
            try:
                self._cluster = CountingRedisCluster(
                    startup_nodes=[StartupNode(host, port) for host, port in self.seeds],
                    password=self.password, decode_responses=True, address_remap=self.remap,
                    retry=Retry(NoBackoff(), 0),  # the retries (and their backoff) are ours, in call()
                    socket_timeout=self.socket_timeout, socket_connect_timeout=self.socket_timeout)
            except redis.RedisError as exc:
                raise SetupError(f"no cluster reachable at {', '.join(format_endpoint(*s) for s in self.seeds)}: "
                                 f"{exc} (start one: python app/stack.py up cluster, or docker-compose -f "
                                 "docker-compose.cluster.yml up -d; or pass --node HOST:PORT)") from None
        return self._cluster

    @property
    def redirects(self) -> Counter[str]:
        return self.cluster.redirects

    def call(self, operation: Callable[[RedisCluster], T]) -> T:
        """Run operation(cluster) under the capped backoff policy."""
        return self.retry.call_with_retry(lambda: operation(self.cluster), lambda error: None)

    def node(self, address: Address, timeout: float = 1.0) -> redis.Redis:
        """A plain client to one node (reachable address), no retries: to inspect or to show MOVED/ASK."""
        return redis.Redis(host=address[0], port=address[1], password=self.password, decode_responses=True,
                           retry=Retry(NoBackoff(), 0), socket_timeout=timeout, socket_connect_timeout=timeout)

    def reachable(self, node: ClusterNode) -> Address:
        return self.remap(node.announced)

    def nodes(self, via: list[Address] | None = None) -> list[ClusterNode]:
        """CLUSTER NODES from the first node that answers (seeds, or via)."""
        errors = []
        for address in via or self.seeds:
            client = self.node(address)
            try:
                client.response_callbacks.pop("CLUSTER NODES", None)  # raw text, parsed by us
                return parse_cluster_nodes(client.execute_command("CLUSTER NODES"))
            except redis.RedisError as exc:
                errors.append(f"{format_endpoint(*address)}: {exc}")
            finally:
                client.close()
        raise SetupError(f"no cluster node answered CLUSTER NODES: {'; '.join(errors)} (start the cluster: "
                         "python app/stack.py up cluster, or pass --node HOST:PORT)")

    def shards(self, via: list[Address] | None = None) -> list[Shard]:
        return shards_of(self.nodes(via))

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.close()
