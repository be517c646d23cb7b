"""--client: the compared client libraries of a suite's failover, built from what the suite already resolved."""

from __future__ import annotations

import contextlib

from lib.clients.libraries.base import ClusterTarget, SentinelTarget
from lib.cluster_client import ClusterClient
from lib.description import TestDescription
from lib.ha_client import Address, HAClient
from lib.history import History
from lib.phases.client_comparison import ClientComparison, client_comparison
from lib.topology.cluster_topology import Shard
from lib.workload.compared_clients import Keys, Opener

HA_GROUP = "master"  # a Sentinel deployment has one shard: the compared clients' ops are all in it


def ha_comparison(test: TestDescription, ha: HAClient, target, reachable: Address, namespace: str,
                  history: History) -> ClientComparison | None:
    """The libraries of --client against the sentinels; the servers counted are the sentinels and data nodes."""
    if not test.clients:
        return None
    sentinel_target = SentinelTarget(list(target.sentinels), ha.master_name, ha.remap, ha.password,
                                      ha.sentinel_password)
    data_nodes = [reachable]
    with contextlib.suppress(Exception):  # counting on the replicas too is best effort
        data_nodes += [a for a in ha.sentinel.discover_slaves(ha.master_name) if a != reachable]
    nodes = list(dict.fromkeys([*data_nodes, *target.sentinels]))
    comparison = client_comparison(test.clients, Opener("sentinel", sentinel_target), {HA_GROUP: Keys()}, namespace,
                                   history, lambda: nodes, ha.password, test.client_timeout_s)
    comparison.landed = _on_current_master(ha)
    comparison.counts_note = ("Sentinels keep no INFO commandstats, so the SENTINEL queries are not counted on the "
                              "servers; the refreshes column counts the master look-ups in the client")
    return comparison


def _on_current_master(ha: HAClient):
    """keys -> present on the master the sentinels name now (one MGET; a new connection each look)."""
    def landed(keys: list[str]) -> list[bool]:
        node = ha.node(ha.master_address(), timeout=0.5)
        try:
            return [value is not None for value in node.mget(keys)]
        finally:
            node.close()

    return landed


def cluster_comparison(test: TestDescription, client: ClusterClient, shards: list[Shard], namespace: str,
                       history: History) -> ClientComparison | None:
    """The libraries of --client with a writer per shard; the servers counted are every node of the layout."""
    if not test.clients:
        return None
    cluster_target = ClusterTarget(list(client.seeds), dict(client.remap.host_map), client.password)
    nodes = list(dict.fromkeys(client.reachable(n) for shard in shards for n in (shard.primary, *shard.replicas)))
    groups = {shard.label: Keys(shard) for shard in shards}
    return client_comparison(test.clients, Opener("cluster", cluster_target), groups, namespace, history,
                             lambda: nodes, client.password, test.client_timeout_s)
