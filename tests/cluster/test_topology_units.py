"""Reading CLUSTER NODES into shards, and choosing keys for a shard or a slot."""

from __future__ import annotations

from redis.crc import key_slot

from lib.cluster_topology import covered_slots, key_in_shard, parse_cluster_nodes, shards_of, tag_for_slot

NODES = """\
a1 172.18.0.2:7000@17000,node-7000 myself,master - 0 0 1 connected 0-5460
b2 172.18.0.3:7001@17001,node-7001 master - 0 0 2 connected 5461-10922
c3 172.18.0.4:7002@17002,node-7002 master - 0 0 3 connected 10923-16383
d4 172.18.0.5:7003@17003,node-7003 slave a1 0 0 1 connected
e5 172.18.0.6:7004@17004,node-7004 slave b2 0 0 2 connected
f6 172.18.0.7:7005@17005,node-7005 master,fail - 0 0 3 disconnected
"""


def test_announced_hostname_is_preferred_over_the_container_ip():
    node = parse_cluster_nodes(NODES)[0]
    assert node.announced == ("node-7000", 7000) and node.ip == "172.18.0.2"


def test_shards_group_replicas_under_their_primary_in_slot_order():
    shards = shards_of(parse_cluster_nodes(NODES))
    assert [s.label for s in shards] == ["0-5460", "5461-10922", "10923-16383"]
    assert [[r.port for r in s.replicas] for s in shards] == [[7003], [7004], []]
    assert covered_slots(shards) == 16384
    assert parse_cluster_nodes(NODES)[5].failed, "a node flagged fail is reported as failed"


def test_keys_for_a_shard_hash_into_it():
    shard = shards_of(parse_cluster_nodes(NODES))[1]
    for seq in range(50):
        assert shard.owns(key_slot(key_in_shard(shard, "ns:", seq).encode()))


def test_a_tag_for_a_slot_puts_keys_in_that_slot():
    tag = tag_for_slot(4242)
    assert key_slot(f"x{{{tag}}}:1".encode()) == key_slot(f"{{{tag}}}:2".encode()) == 4242
