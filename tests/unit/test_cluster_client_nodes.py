"""ClusterClient.nodes(): once the seed is the node a fault killed, the nodes seen before still answer."""

from __future__ import annotations

import pytest
import redis

import lib.cluster_client as cluster_client
from lib.cluster_client import ClusterClient
from lib.errors import SetupError
from lib.topology.cluster_topology import parse_cluster_nodes

NODES = ("a1 10.0.0.1:7000@17000,node-7000 myself,master - 0 0 1 connected 0-8191\n"
         "b2 10.0.0.2:7001@17001,node-7001 master - 0 0 2 connected 8192-16383\n")


def fake_cluster(monkeypatch, down: set[tuple[str, int]]) -> list[tuple[str, int]]:
    asked: list[tuple[str, int]] = []

    def node(self, address, timeout=1.0):
        return address  # the "client" of a node is its address; nodes() keeps one per address

    def read(address):
        asked.append(address)
        if address in down:
            raise redis.ConnectionError(f"Error 111 connecting to {address[0]}:{address[1]}")
        return parse_cluster_nodes(NODES)

    monkeypatch.setattr(ClusterClient, "node", node)
    monkeypatch.setattr(cluster_client, "read_cluster_nodes", read)
    return asked


def test_a_dead_seed_falls_back_to_the_nodes_seen_before(monkeypatch):
    fake_cluster(monkeypatch, down=set())
    client = ClusterClient([("127.0.0.1", 7000)])
    assert [n.port for n in client.nodes()] == [7000, 7001]
    nodes = fake_cluster(monkeypatch, down={("127.0.0.1", 7000)})
    assert [n.port for n in client.nodes()] == [7000, 7001], "expected the answer of node-7001, seen before"
    assert nodes == [("127.0.0.1", 7000), ("127.0.0.1", 7001)], f"asked {nodes}: the seed first, then node-7001"


def test_with_no_node_seen_before_a_dead_seed_is_a_setup_error(monkeypatch):
    fake_cluster(monkeypatch, down={("127.0.0.1", 7000)})
    with pytest.raises(SetupError, match="no cluster node answered CLUSTER NODES: 127.0.0.1:7000"):
        ClusterClient([("127.0.0.1", 7000)]).nodes()


def test_the_failover_watch_reuses_one_client_per_node_and_close_closes_them(monkeypatch):
    built: list[FakeNodeClient] = []

    def node(self, address, timeout=1.0):
        built.append(FakeNodeClient(address))
        return built[-1]

    monkeypatch.setattr(ClusterClient, "node", node)
    monkeypatch.setattr(cluster_client, "read_cluster_nodes", lambda client: parse_cluster_nodes(NODES))
    client = ClusterClient([("127.0.0.1", 7000)])
    for _ in range(3):
        client.nodes([("127.0.0.1", 7001)])
    assert [c.address for c in built] == [("127.0.0.1", 7001)], "expected one client for three questions"
    client.close()
    assert all(c.closed for c in built), "close() left a node client open"


class FakeNodeClient:
    def __init__(self, address):
        self.address, self.closed = address, False

    def close(self):
        self.closed = True
