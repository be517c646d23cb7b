"""Reading CLUSTER NODES into shards, and choosing keys for a shard or a slot."""

from __future__ import annotations

import pytest

from lib.topology.cluster_topology import (
    Shard,
    covered_slots,
    key_in_shard,
    parse_cluster_nodes,
    shards_of,
    tag_for_slot,
)

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


def reference_slot(key: str) -> int:
    """CRC16-XMODEM mod 16384 of the key, or of its first non-empty {tag}: the cluster spec, written out
    bit by bit here so that the key helpers are checked against something other than redis.crc."""
    start = key.find("{")
    if start != -1:
        end = key.find("}", start + 1)
        if end > start + 1:
            key = key[start + 1:end]
    crc = 0
    for byte in key.encode():
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc % 16384


def test_the_reference_slot_function_gives_the_documented_slots():
    assert reference_slot("123456789") == 0x31C3, "the CRC16-XMODEM check value"
    assert reference_slot("somekey") == 11058, "CLUSTER KEYSLOT somekey in the Redis docs"
    assert reference_slot("foo{hash_tag}") == reference_slot("bar{hash_tag}") == 2515, "CLUSTER KEYSLOT docs"
    assert reference_slot("{}x") != reference_slot("x"), "an empty tag is no tag: the whole key is hashed"


def test_a_key_for_a_shard_is_the_first_attempt_whose_slot_the_shard_owns():
    shard = shards_of(parse_cluster_nodes(NODES))[1]  # 5461-10922
    assert [key_in_shard(shard, "ns:", seq) for seq in range(5)] == ["ns:0:1", "ns:1:1", "ns:2:0", "ns:3:0",
                                                                      "ns:4:3"]
    for seq in range(50):
        key = key_in_shard(shard, "ns:", seq)
        prefix, _, attempt = key.rpartition(":")
        assert prefix == f"ns:{seq}" and 5461 <= reference_slot(key) <= 10922, f"{key} in slot {reference_slot(key)}"
        earlier = [f"ns:{seq}:{a}" for a in range(int(attempt))]
        assert not any(5461 <= reference_slot(k) <= 10922 for k in earlier), f"{earlier} skipped a key of the shard"


def test_no_key_for_a_shard_without_slots_is_an_error_not_a_hang():
    empty = Shard(parse_cluster_nodes("z9 10.0.0.9:7009@17009 master - 0 0 9 connected")[0])
    with pytest.raises(ValueError, match="no key found"):
        key_in_shard(empty, "ns:", 0)


def test_a_tag_for_a_slot_puts_keys_in_that_slot():
    tag = tag_for_slot(4242)
    assert tag == "t5584", f"the first t<n> in slot 4242, got {tag}"
    assert reference_slot(f"x{{{tag}}}:1") == reference_slot(f"{{{tag}}}:2") == 4242, f"keys with {{{tag}}}"
    assert all(reference_slot(f"t{n}") != 4242 for n in range(5584)), "no earlier tag was skipped"
