"""The cluster suite's verdicts (lib/checks/cluster_*.py) against an in-memory cluster: no server.

Namespaces carry a hash tag where the slot matters, so the slot is known by hand: CLUSTER KEYSLOT
somekey is 11058 (the Redis cluster tutorial), which node-7002 owns (10923-16383).
"""

from __future__ import annotations

import binascii

import pytest
import redis

from lib.checks.cluster_failover_checks import check_primary_failure
from lib.checks.cluster_placement import check_connect, check_distribution, check_placement
from lib.checks.cluster_redirects import check_ask, check_moved
from lib.checks.cluster_rejoin import check_rejoin
from lib.checks.result import ERROR, FAIL, OK, WARN
from lib.faults.fault import Fault
from lib.faults.kill import Kill
from lib.history import FAIL as OP_FAIL
from lib.history import OK as OP_OK
from lib.history import History, Op
from lib.report.cluster_report import distribution_table
from lib.runs.cluster_failover_run import ClusterFailoverRun
from lib.suites.cluster_restore import rejoin
from lib.topology.cluster_topology import tag_for_slot
from lib.waits import WaitTimeout

from .fake_cluster import NODES_TEXT, FakeCluster, FakeClusterClient, three_shards

NS = "vhc:cluster:unit:"
SOMEKEY_NS = "{somekey}:"  # every key of this namespace is in slot 11058, on node-7002
LABELS = ("0-5460", "5461-10922", "10923-16383")


def cluster(text: str = NODES_TEXT, **world) -> tuple[FakeClusterClient, FakeCluster, list]:
    shards = three_shards(text)
    fake = FakeCluster(shards, **world)
    return FakeClusterClient(fake), fake, shards


# ---- connect ---------------------------------------------------------------------------------------

def test_connect_is_ok_with_every_slot_covered_and_a_replica_per_shard():
    client, _, shards = cluster()
    result = check_connect(client, shards)
    assert result.status == OK, result.detail
    assert result.detail == ("3 shards, 16384 of 16384 slots covered, cluster_state:ok; every shard has a replica, "
                             "no slot migrating"), f"{result.detail!r}"
    assert result.metrics["layout"][0] == {"slots": "0-5460", "primary": "node-7000:7000",
                                           "replicas": ["node-7003:7003"]}, f"{result.metrics['layout']}"


def test_connect_warns_about_a_shard_without_a_replica():
    client, _, shards = cluster(NODES_TEXT.replace("f5 10.0.0.15:7005@17005,node-7005 slave c2 0 0 3 connected\n", ""))
    result = check_connect(client, shards)
    assert result.status == WARN, result.detail
    assert result.detail.endswith("; no replica for 10923-16383"), f"{result.detail!r}"


def test_connect_fails_on_a_slot_migration_left_open():
    client, fake, shards = cluster()
    fake.open[("a0", 7)] = ("migrating", "b1")
    fake.open[("b1", 7)] = ("importing", "a0")
    result = check_connect(client, shards)
    assert result.status == FAIL, result.detail
    assert result.metrics["open_slots"] == ["slot 7 migrating on node-7000:7000 to node-7001:7001",
                                            "slot 7 importing on node-7001:7001 from node-7000:7000"], result.metrics
    assert "a slot migration was left open" in result.detail, result.detail


def test_connect_fails_on_a_cluster_state_other_than_ok():
    client, _, shards = cluster(state="fail")
    result = check_connect(client, shards)
    assert result.status == FAIL and "cluster_state:fail" in result.detail, result.detail


def test_connect_fails_when_slots_are_not_covered():
    text = "\n".join(line for line in NODES_TEXT.splitlines() if "c2" not in line) + "\n"  # no 10923-16383
    client, _, shards = cluster(text)
    result = check_connect(client, shards)
    assert result.status == FAIL, result.detail
    assert result.detail == "2 shards, 10923 of 16384 slots covered, cluster_state:ok", f"{result.detail!r}"


# ---- placement -------------------------------------------------------------------------------------

def test_placement_is_ok_when_the_server_agrees_on_slots_and_owners_hold_their_keys():
    client, fake, shards = cluster()
    result = check_placement(client, shards, NS)
    assert result.status == OK, result.detail
    assert (result.metrics["keys"], result.metrics["hash_tag_groups"]) == (300, 10), f"{result.metrics}"
    assert (result.metrics["client_slot_mismatches"], result.metrics["split_hash_tag_groups"],
            result.metrics["not_on_owner"]) == (0, [], []), f"{result.metrics}"
    assert sum(len(keys) for keys in fake.data.values()) == 300, "300 keys written, each once"


def test_placement_fails_when_the_server_hashes_the_whole_key_ignoring_hash_tags():
    client, fake, shards = cluster()
    fake.keyslot = lambda key: binascii.crc_hqx(key.encode(), 0) % 16384  # no {tag} rule
    result = check_placement(client, shards, NS)
    assert result.status == FAIL, result.detail
    assert result.metrics["client_slot_mismatches"] == 50, "the 10 groups x 5 tagged keys; untagged keys agree"
    assert result.detail.startswith("50 slot mismatches, 0 split tag groups, 0 keys"), f"{result.detail!r}"


def test_placement_fails_when_keys_land_on_a_node_that_does_not_own_their_slot():
    client, fake, shards = cluster()
    fake.write_to = {"c2": "b1"}  # node-7002's keys end up on node-7001
    result = check_placement(client, shards, NS)
    assert result.status == FAIL and fake.misrouted > 0, result.detail
    assert result.detail == f"0 slot mismatches, 0 split tag groups, {fake.misrouted} keys not on their slot's owner"
    assert len(result.metrics["not_on_owner"]) == min(10, fake.misrouted), "a sample of at most 10 keys"


# ---- moved -----------------------------------------------------------------------------------------

def test_moved_sees_the_redirect_a_plain_client_gets_and_the_cluster_client_follows():
    client, fake, shards = cluster()
    result = check_moved(client, shards, SOMEKEY_NS)
    assert result.status == OK, result.detail
    metrics = result.metrics
    assert (metrics["key"], metrics["slot"], metrics["asked"]) == ("{somekey}:moved", 11058, "node-7000:7000")
    assert metrics["plain_client_reply"] == "MOVED 11058 node-7002:7002", f"{metrics['plain_client_reply']!r}"
    assert (metrics["cluster_client_value"], metrics["cluster_client_redirects"]) == ("here", 1), f"{metrics}"
    assert fake.sent["c2"]["MOVED"] == 1, "the old owner (node-7002) sent the cluster client one MOVED"
    assert fake.owner[11058] == "c2" and fake.open == {}, "slot 11058 is back on node-7002, nothing open"
    assert fake.data["c2"] == {"{somekey}:moved": "here"}, "and so is its key"


def test_moved_fails_when_the_wrong_node_answers_instead_of_redirecting():
    client, fake, shards = cluster()
    fake.plain_redirects = False
    result = check_moved(client, shards, SOMEKEY_NS)
    assert result.status == FAIL, result.detail
    assert result.detail == "a plain client at the wrong node got None, not MOVED", f"{result.detail!r}"


def test_moved_fails_when_the_cluster_client_does_not_follow_the_redirect():
    client, fake, shards = cluster()
    fake.follows_moved = False
    result = check_moved(client, shards, SOMEKEY_NS)
    assert result.status == FAIL, result.detail
    assert result.detail == "cluster client read None; the old owner sent it 1 MOVED (INFO errorstats)", \
        f"{result.detail!r}"


def test_moved_and_ask_need_two_shards():
    text = "a0 10.0.0.10:7000@17000,node-7000 master - 0 0 1 connected 0-16383\n"
    client, _, shards = cluster(text)
    assert check_moved(client, shards, NS).status == WARN, "one shard: no node to be wrong about"
    assert check_ask(client, shards, NS).status == WARN, "one shard: nowhere to migrate"


# ---- ask -------------------------------------------------------------------------------------------

def test_ask_migrates_slot_7_reads_and_writes_through_ask_and_puts_it_back():
    client, fake, shards = cluster()
    result = check_ask(client, shards, NS)
    metrics = result.metrics
    assert result.status == OK, result.detail
    assert (metrics["slot"], metrics["from"], metrics["to"]) == (7, "node-7000:7000", "node-7001:7001")
    assert metrics["plain_client_reply"] == "ASK 7 node-7001:7001", f"{metrics['plain_client_reply']!r}"
    # 10 moved keys read + SET of a new key + SET of a moved key + 2 of the 3 read back: 14 ASKs
    assert metrics["ask_redirects_during"] == 14, f"{metrics['ask_redirects_during']}"
    assert metrics["moved_keys"] == 20, "10 moved first, the other 10 when the migration completed"
    assert fake.owner[7] == "a0" and fake.open == {}, "slot 7 back on node-7000"
    assert len([k for k in fake.data["a0"] if k.startswith(NS)]) == 21, "20 keys + the one written during it"
    assert result.detail.endswith("(counted by the source); slot moved back, nothing left migrating"), result.detail


def test_ask_fails_when_the_source_serves_instead_of_answering_ask():
    client, fake, shards = cluster()
    fake.plain_redirects = False
    result = check_ask(client, shards, NS)
    assert result.status == FAIL, result.detail
    assert result.detail == "plain client on the source got a value (no ASK), not ASK", f"{result.detail!r}"


def test_ask_fails_when_a_key_is_lost_while_the_slot_moves():
    client, fake, shards = cluster()
    tag = tag_for_slot(7)
    fake.migrate_loses = {f"{NS}{{{tag}}}:19"}  # moved when the migration completes, after the reads
    result = check_ask(client, shards, NS)
    assert result.status == FAIL, result.detail
    assert result.detail == "keys changed or vanished when the slot was moved back", f"{result.detail!r}"


def test_ask_puts_the_slot_back_when_the_cluster_client_fails_mid_migration():
    client, fake, shards = cluster()
    fake.fails_reads_while_migrating = True
    with pytest.raises(redis.ConnectionError) as raised:
        check_ask(client, shards, NS)
    assert fake.owner[7] == "a0" and fake.open == {}, "migration cancelled"
    assert "open migration of slot 7 cancelled: 10 key(s) moved back" in " ".join(raised.value.__notes__), \
        "the error says the slot was put back"
    assert len([k for k in fake.data["a0"] if k.startswith(NS)]) == 20, "the moved keys came back to the source"


# ---- distribution ----------------------------------------------------------------------------------

def test_distribution_counts_every_written_key_on_the_primaries():
    client, _, shards = cluster()
    result = check_distribution(client, shards, NS)
    table = distribution_table(shards, result.metrics)
    assert result.status == OK, result.detail
    per_shard = result.metrics["per_shard"]
    assert (result.metrics["written"], result.metrics["counted"]) == (3000, 3000), f"{result.metrics}"
    assert list(per_shard) == list(LABELS) and sum(per_shard.values()) == 3000, f"{per_shard}"
    assert table.row_count == 4, "a row per shard and the total"


def test_distribution_fails_when_one_node_holds_every_key():
    client, fake, shards = cluster()
    fake.write_to = {"b1": "a0", "c2": "a0"}
    result = check_distribution(client, shards, NS)
    assert result.status == FAIL, result.detail
    assert result.metrics["per_shard"] == {"0-5460": 3000, "5461-10922": 0, "10923-16383": 0}
    assert result.detail == ("0-5460 holds 100.0% of keys for 33.3% of slots; 5461-10922 holds 0.0% of keys for "
                             "33.3% of slots; 10923-16383 holds 0.0% of keys for 33.3% of slots"), f"{result.detail!r}"


def test_distribution_fails_first_on_keys_that_are_not_there():
    client, fake, shards = cluster()
    fake.dropped = {"c2"}
    result = check_distribution(client, shards, NS)
    counted = result.metrics["per_shard"]["0-5460"] + result.metrics["per_shard"]["5461-10922"]
    assert result.status == FAIL and result.metrics["per_shard"]["10923-16383"] == 0, result.detail
    assert result.detail.startswith(f"counted {counted} keys on the primaries, wrote 3000"), f"{result.detail!r}"


# ---- primary_failure -------------------------------------------------------------------------------

FAULT_AT = 100.0
REFUSED = "ConnectionError: Error 111 connecting to node-7000:7000. Connection refused."


def op(group: str, seq: int, start: float, end: float, outcome: str = OP_OK, error: str | None = None) -> Op:
    return Op(seq, f"{NS}w:{group}:{seq}", FAULT_AT + start, FAULT_AT + end, outcome, error, group=group,
              value=str(seq))


def failover_history(other_pause: float = 0.7) -> History:
    """Shard 0-5460 loses its primary at 0 and writes again at +3.02 s; the others keep writing."""
    history = History()
    for o in [op(LABELS[0], 0, -0.10, -0.09), op(LABELS[0], 1, -0.05, -0.04),
              op(LABELS[0], 2, 0.0, 0.5, OP_FAIL, REFUSED),
              op(LABELS[0], 3, 0.6, 1.2, OP_FAIL, "ClusterDownError: The cluster is down"),
              op(LABELS[0], 4, 3.0, 3.02), op(LABELS[0], 5, 3.1, 3.11)]:
        history.record(o)
    ends = [-0.05, 0.2, 0.2 + other_pause, 1.6, 2.3, 3.0, 3.45]  # the longest pause after the fault: other_pause
    for label in LABELS[1:]:
        for seq, end in enumerate(ends):
            history.record(op(label, seq, end - 0.01, end))
    history.event("node flagged pfail", "", at=FAULT_AT + 1.9)
    history.event("node flagged fail", "", at=FAULT_AT + 2.4)
    history.event("promoted", "", at=FAULT_AT + 2.95)
    return history


KILL_FACTS = {"strict": Kill.strict, "loss_explained": Kill.loss_explained}  # what --fault auto says of itself


def primary_failure_run(history: History, shards: list, **fields) -> ClusterFailoverRun:
    plain = History()
    for o in [op(LABELS[0], 0, -0.03, -0.02), op(LABELS[0], 1, 0.1, 0.2, OP_FAIL, "ConnectionError"),
              op(LABELS[0], 2, 3.5, 3.6)]:
        plain.record(o)
    defaults = {"victim": shards[0], "fault_at": FAULT_AT, "promoted_at": FAULT_AT + 2.95,
                "promoted": shards[0].replicas[0], "recovered_at": FAULT_AT + 3.5, "plain": plain,
                "facts": KILL_FACTS}
    return ClusterFailoverRun("SIGKILL node-7000 (local launcher, like docker kill)", shards, history,
                              **{**defaults, **fields})


def holding_every_acked_write(history: History, *, lose: int = 0) -> FakeClusterClient:
    client, fake, _ = cluster()
    acked = [o for o in history.snapshot() if o.outcome == OP_OK]
    for o in acked[lose:]:
        fake.data[fake.owner[fake.slot_of(o.key)]][o.key] = str(o.seq)
    history.record_final_read({o.key: fake.data[fake.owner[fake.slot_of(o.key)]].get(o.key)
                               for o in history.snapshot()})  # what the checks judge by
    return client


def test_primary_failure_measures_the_shard_outage_the_promotion_and_the_other_shards():
    shards = three_shards()
    history = failover_history()
    result = check_primary_failure(holding_every_acked_write(history), primary_failure_run(
        history, shards), None)
    metrics = result.metrics
    assert result.status == OK, result.detail
    assert (metrics["shard"], metrics["old_primary"], metrics["promoted"]) == (
        "0-5460", "node-7000:7000", "node-7003:7003"), f"{metrics}"
    assert metrics["affected_downtime_ms"] == 3060.0, "last ok -0.04 s, first ok +3.02 s"
    assert metrics["other_shards_longest_gap_ms"] == {"5461-10922": 700.0, "10923-16383": 700.0}
    assert (metrics["promoted_after_s"], metrics["ours_after_promotion_ms"]) == (2.95, 70.0), f"{metrics}"
    assert (metrics["plain_downtime_ms"], metrics["plain_after_promotion_ms"]) == (3620.0, 650.0), f"{metrics}"
    assert (metrics["node_flagged_pfail_s"], metrics["node_flagged_fail_s"]) == (1.9, 2.4), f"{metrics}"
    assert metrics["errors_by_type"] == {"ConnectionError": 1, "ClusterDownError": 1}, f"{metrics}"
    assert (metrics["ops_total"], metrics["acked"], metrics["lost"]) == (20, 18, 0), f"{metrics}"
    assert "shard 0-5460 unable to write for 3,060 ms; other shards' longest pause 700 ms" in result.detail


def test_primary_failure_fails_on_writes_the_dead_primary_took_with_it_and_says_why():
    shards = three_shards()
    history = failover_history()
    result = check_primary_failure(holding_every_acked_write(history, lose=2),
                                                primary_failure_run(history, shards), None)
    assert result.status == FAIL and "asynchronous replication" in result.detail, result.detail
    assert "any acknowledged write lost is a FAIL" in result.detail, result.detail
    assert result.metrics["lost"] == 2, f"{result.metrics}"


def test_primary_failure_fails_when_another_shard_paused_over_a_second():
    shards = three_shards()
    history = failover_history(other_pause=1.2)
    result = check_primary_failure(holding_every_acked_write(history), primary_failure_run(
        history, shards), None)
    assert result.status == FAIL, result.detail
    assert result.detail.endswith("; shards 5461-10922, 10923-16383 stopped serving for more than 1000 ms")
    assert result.metrics["other_shards_longest_gap_ms"]["5461-10922"] == 1200.0, f"{result.metrics}"


def test_primary_failure_fails_without_a_recovery_or_a_victim():
    shards = three_shards()
    history = failover_history()
    stuck = primary_failure_run(history, shards, timeout_reason="timed out after 60s waiting for a promotion")
    result = check_primary_failure(holding_every_acked_write(history), stuck, None)
    assert (result.status, result.detail) == (FAIL, "no recovery: timed out after 60s waiting for a promotion")
    nobody = primary_failure_run(history, shards, victim=None, timeout_reason="no primary stopped")
    result = check_primary_failure(holding_every_acked_write(history), nobody, None)
    assert (result.status, result.detail) == (FAIL, "no shard lost its primary: no primary stopped"), f"{result}"


def test_primary_failure_is_an_error_of_the_harness_when_the_final_read_never_got_an_answer():
    shards = three_shards()
    history = failover_history()
    history.final_read_error = "the harness could not read back the 40 written keys within 30 s: last seen " \
                               "ClusterDownError: The cluster is down"
    result = check_primary_failure(cluster()[0], primary_failure_run(history, shards), None)
    assert result.status == ERROR, f"the harness's read failed, not Valkey: {result.status}"
    assert result.detail.endswith("writes not judged: " + history.final_read_error), result.detail
    assert result.metrics["fault"] and result.metrics["promoted"], "the result still says which fault ran and what"


def test_primary_failure_is_skipped_without_a_fault():
    result = check_primary_failure(cluster()[0], None, "--fault none")
    assert (result.status, result.detail) == (WARN, "skipped: --fault none"), f"{result}"


# ---- rejoin ----------------------------------------------------------------------------------------
# rejoin (lib/suites/cluster_restore.py) is the scenario: the suite restarts the old primary and puts the roles back;
# check_rejoin and check_roles_put_back only wait and judge.

AFTER_FAILOVER = """\
a0 10.0.0.10:7000@17000,node-7000 {old_flags} {old_master} 0 0 4 connected
b1 10.0.0.11:7001@17001,node-7001 master - 0 0 2 connected 5461-10922
c2 10.0.0.12:7002@17002,node-7002 master - 0 0 3 connected 10923-16383
d3 10.0.0.13:7003@17003,node-7003 master - 0 0 4 connected 0-5460
e4 10.0.0.14:7004@17004,node-7004 slave b1 0 0 2 connected
f5 10.0.0.15:7005@17005,node-7005 slave c2 0 0 3 connected
"""


class Restart(Fault):
    """A kill the suite heals by starting the node again (pending: injected, not healed yet)."""

    def __init__(self, comes_back: bool = True):
        self.comes_back = comes_back
        self.restores = 0
        self.pending_heal = True

    def heal(self, timeout: float) -> bool:
        self.restores += 1
        return self.comes_back


def rejoin_cluster(old_flags: str = "myself,slave", old_master: str = "d3", link: str = "up", state: str = "ok"):
    client, fake, shards = cluster()
    fake.canned_nodes["a0"] = AFTER_FAILOVER.format(old_flags=old_flags, old_master=old_master)
    fake.replication["a0"] = {"role": "slave", "master_link_status": link}
    fake.cluster_state["c2"] = state
    run = ClusterFailoverRun("SIGKILL node-7000", shards, victim=shards[0], promoted=shards[0].replicas[0],
                             fault_at=FAULT_AT, promoted_at=FAULT_AT + 2.95)
    return client, run


def test_rejoin_is_ok_when_the_old_primary_replicates_from_the_promoted_one():
    client, run = rejoin_cluster()
    fault = Restart()
    result = rejoin(client, run, fault, 30)
    assert fault.restores == 1, "the suite started the old primary again before the check"
    assert result.status == OK, result.detail
    assert result.metrics == {"old_primary_rejoined": True, "new_primary": "node-7003:7003"}, f"{result.metrics}"
    assert result.detail.startswith("node-7000:7000 is back as a replica of node-7003:7003"), f"{result.detail!r}"


@pytest.mark.parametrize("broken", [{"old_flags": "myself,master", "old_master": "-"}, {"link": "down"},
                                    {"state": "fail"}])
def test_rejoin_fails_when_the_old_primary_is_not_a_linked_replica_or_the_cluster_is_not_ok(broken):
    client, run = rejoin_cluster(**broken)
    result = rejoin(client, run, Restart(), 30)
    assert result.status == FAIL and result.detail.startswith("did not rejoin"), result.detail
    assert result.metrics == {"old_primary_rejoined": False}, f"{result.metrics}"


def test_check_rejoin_judges_without_restarting_anything():
    client, run = rejoin_cluster()
    result = check_rejoin(client, run)  # no fault: the check cannot act on one
    assert result.status == OK and result.metrics["old_primary_rejoined"] is True, result.detail
    told = check_rejoin(client, run, "was not started again within 30s")
    assert (told.status, told.detail) == (WARN, "node-7000:7000 was not started again within 30s"), f"{told}"
    assert told.metrics == {"old_primary_restarted": False}, f"{told.metrics}"


def test_roles_are_not_put_back_when_the_old_primary_did_not_rejoin():
    client, run = rejoin_cluster(link="down")
    failovers: list[str] = []
    client.world.on_cluster_failover = failovers.append
    result = rejoin(client, run, Restart(), 30, put_back=True)
    assert result.status == FAIL and result.detail.startswith("did not rejoin"), result.detail
    assert failovers == [], "no CLUSTER FAILOVER on a node that is not a linked replica"


SWAPPED_BACK = AFTER_FAILOVER.replace("d3 10.0.0.13:7003@17003,node-7003 master - 0 0 4 connected 0-5460",
                                      "d3 10.0.0.13:7003@17003,node-7003 {new_flags} a0 0 0 5 connected")


def test_rejoin_can_put_the_roles_back_with_cluster_failover_on_the_old_primary():
    client, run = rejoin_cluster()
    fake = client.world

    def swap_back(node_id: str) -> None:
        assert node_id == "a0", f"CLUSTER FAILOVER goes to the old primary, not {node_id}"
        fake.canned_nodes["a0"] = SWAPPED_BACK.format(old_flags="myself,master", old_master="-", new_flags="slave") \
            .replace("a0 10.0.0.10:7000@17000,node-7000 myself,master - 0 0 4 connected",
                     "a0 10.0.0.10:7000@17000,node-7000 myself,master - 0 0 5 connected 0-5460")
        fake.canned_nodes["d3"] = SWAPPED_BACK.format(old_flags="master", old_master="-", new_flags="myself,slave")
        fake.replication["d3"] = {"role": "slave", "master_link_status": "up"}

    fake.on_cluster_failover = swap_back
    result = rejoin(client, run, Restart(), 30, put_back=True)
    assert result.status == OK, result.detail
    assert result.metrics == {"old_primary_rejoined": True, "roles_put_back": True, "new_primary": "node-7000:7000"}
    assert "roles put back: node-7000:7000 is the primary again (CLUSTER FAILOVER), node-7003:7003 its replica" in \
        result.detail, result.detail


def test_rejoin_fails_when_the_roles_cannot_be_put_back():
    client, run = rejoin_cluster()
    client.world.on_cluster_failover = lambda node_id: None  # accepted, but the old primary never takes over
    result = rejoin(client, run, Restart(), 30, put_back=True)
    assert result.status == FAIL and "the roles were NOT put back" in result.detail, result.detail
    assert result.metrics["roles_put_back"] is False, f"{result.metrics}"


def test_rejoin_warns_when_restarting_the_old_primary_raised():
    class Unstartable(Restart):
        def heal(self, timeout: float) -> bool:
            raise WaitTimeout("timed out after 30s waiting for node-7000 to answer PING")

    client, run = rejoin_cluster()
    result = rejoin(client, run, Unstartable(), 30)
    assert result.status == WARN, result.detail
    assert result.detail.startswith("node-7000:7000 was not started again: timed out"), f"{result.detail!r}"


def test_rejoin_warns_when_the_old_primary_was_not_started_again():
    client, run = rejoin_cluster()
    result = rejoin(client, run, Restart(comes_back=False), 45)
    assert result.status == WARN, result.detail
    assert result.detail == "node-7000:7000 was not started again within 45s", f"{result.detail!r}"


def test_rejoin_is_skipped_without_a_promotion():
    client, run = rejoin_cluster()
    run.promoted = None
    assert rejoin(client, run, Restart(), 30).status == WARN, "nothing was promoted"
    assert rejoin(client, None, None, 30).detail == "skipped: no failover happened"
