"""The init job's planning: pure functions of what the nodes report, so every case is checkable fast."""

from __future__ import annotations

import pytest

from .conftest import load_init_module

init = load_init_module()
P = [init.Node("node-7000", 7000), init.Node("node-7001", 7001), init.Node("node-7002", 7002)]
R = [init.Node("node-7003", 7003), init.Node("node-7004", 7004), init.Node("node-7005", 7005)]
IDS = {node: f"{node.port:040d}" for node in P + R}
ADDRESSES = {node: f"10.0.0.{node.port - 6999}:{node.port}" for node in P + R}
SHARDS = init.shards_for(P, R)


def line(node, flags="master", master="-", slots="", myself=False) -> str:
    flags = ("myself," if myself else "") + flags
    return (f"{IDS[node]} {ADDRESSES[node]}@{node.port + 10000},{node.host} {flags} {master} 0 0 1 connected "
            f"{slots}").strip()


def formed() -> list[str]:
    ranges = ["0-5460", "5461-10922", "10923-16383"]
    return ([line(p, slots=r) for p, r in zip(P, ranges, strict=True)]
            + [line(r, "slave", IDS[p]) for r, p in zip(R, P, strict=True)])


def owners(lines: list[str]) -> dict[int, str]:
    return init.slot_owners({P[0]: init.parse_nodes("\n".join(lines))})


def test_slot_ranges_split_like_valkey_cli():
    assert init.slot_ranges(3) == [(0, 5460), (5461, 10922), (10923, 16383)]
    assert init.slot_ranges(1) == [(0, 16383)]


def test_replica_i_follows_primary_i():
    assert [(s.primary, s.replicas) for s in SHARDS] == [(p, (r,)) for p, r in zip(P, R, strict=True)]


def test_parse_nodes_reads_address_flags_and_migrating_slots():
    entry, = init.parse_nodes(line(P[0], slots="0-10 12 [11->-abc]", myself=True))
    assert (entry.address, entry.flags, entry.slots) == ("10.0.0.1:7000", {"myself", "master"}, [(0, 10), (12, 12)])
    assert entry.migrating == ["[11->-abc]"]


def test_meets_only_nodes_not_known_and_not_in_handshake():
    view = init.parse_nodes("\n".join([line(P[0], myself=True), line(P[1]),
                                       f"{'f' * 40} {ADDRESSES[P[2]]}@17002 handshake - 0 0 0 connected"]))
    assert init.plan_meets(IDS, ADDRESSES, view) == R, "P[1] is known, P[2] mid-handshake: meet neither"


def test_formed_cluster_needs_no_change():
    assert init.plan_slots(SHARDS, IDS, owners(formed())) == []
    selves = {e_node: e for e_node, e in zip(P + R, init.parse_nodes("\n".join(formed())), strict=True)}
    assert init.plan_replicas(SHARDS, IDS, selves, owners(formed())) == []


def test_half_formed_cluster_gets_only_the_missing_slots_and_replicas():
    lines = [line(P[0], slots="0-5460"), line(P[1], slots="5461-6000"), line(P[2])] + [line(r) for r in R]
    lines[3] = line(R[0], "slave", IDS[P[0]])
    plan = init.plan_slots(SHARDS, IDS, owners(lines))
    assert plan == [(P[1], 6001, 10922), (P[2], 10923, 16383)], "never re-assigns a slot someone owns"
    selves = dict(zip(P + R, init.parse_nodes("\n".join(lines)), strict=True))
    assert init.plan_replicas(SHARDS, IDS, selves, owners(lines)) == [(R[1], P[1]), (R[2], P[2])]


def test_after_a_failover_the_swapped_shard_is_left_alone():
    lines = formed()
    lines[0] = line(P[0], "slave", IDS[R[0]])
    lines[3] = line(R[0], slots="0-5460")
    assert init.plan_slots(SHARDS, IDS, owners(lines)) == []
    selves = dict(zip(P + R, init.parse_nodes("\n".join(lines)), strict=True))
    assert init.plan_replicas(SHARDS, IDS, selves, owners(lines)) == []


def test_a_slot_owned_outside_its_shard_stops_with_the_reason():
    lines = formed()
    lines[1] = line(P[1], slots="5461-10922 0")
    lines[0] = line(P[0], slots="1-5460")
    with pytest.raises(init.InitError, match=r"slots 0-5460 .* node-7001:7001"):
        init.plan_slots(SHARDS, IDS, owners(lines))


def test_a_shard_split_between_its_primary_and_replica_stops():
    lines = [line(P[0], slots="0-5460"), line(P[1], slots="5461-10922"), line(P[2], slots="10923-16000"),
             line(R[0], "slave", IDS[P[0]]), line(R[1], "slave", IDS[P[1]]), line(R[2], slots="16001-16383")]
    with pytest.raises(init.InitError, match="split between"):
        init.plan_slots(SHARDS, IDS, owners(lines))


def test_unknown_node_ids_and_migrations_stop_the_run():
    stranger = f"{'e' * 40} 10.0.0.9:7009@17009 master,fail - 0 0 1 disconnected"
    with pytest.raises(init.InitError, match="CLUSTER FORGET"):
        init.check_no_strangers(IDS, {P[0]: init.parse_nodes("\n".join([*formed(), stranger]))})
    with pytest.raises(init.InitError, match="STABLE"):
        owners([line(P[0], slots="0-5460 [7->-x]")])


def test_runs_groups_consecutive_slots():
    assert init.runs([5, 1, 2, 3, 9]) == [(1, 3), (5, 5), (9, 9)]
