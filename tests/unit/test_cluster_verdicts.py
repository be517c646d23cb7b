"""The cluster suite's verdicts (lib/checks/cluster_*.py): each phase (lib/phases/cluster_phases.py, the rejoin in
lib/suites/cluster_rejoin_phase.py) run against an in-memory cluster into a History, then the pure check judges that
history alone. No server.

Namespaces carry a hash tag where the slot matters, so the slot is known by hand: CLUSTER KEYSLOT
somekey is 11058 (the Redis cluster tutorial), which node-7002 owns (10923-16383).
"""

from __future__ import annotations

import binascii

import pytest
import redis

from lib import events
from lib.checks.cluster_failover_checks import check_primary_failure
from lib.checks.cluster_placement import check_connect, check_distribution, check_placement
from lib.checks.cluster_redirects import check_ask, check_moved
from lib.checks.cluster_rejoin import check_rejoin
from lib.checks.result import ERROR, FAIL, OK, WARN
from lib.faults.fault import Fault
from lib.faults.kill import Kill
from lib.history import FAIL as OP_FAIL
from lib.history import HARNESS, INJECT, NEMESIS, PLAIN, WRITER, History, Op
from lib.history import OK as OP_OK
from lib.phases.cluster_phases import (
    Steps,
    broken,
    observe_ask,
    observe_connect,
    observe_distribution,
    observe_moved,
    observe_placement,
)
from lib.phases.cluster_record import (
    GAVE_UP,
    PROMOTED_NODE,
    REJOIN,
    VICTIM,
    ClusterFailoverView,
    record_layout,
    record_node,
)
from lib.report.cluster_report import distribution_table
from lib.suites.cluster_rejoin_phase import rejoin
from lib.topology.cluster_topology import tag_for_slot
from lib.waits import WaitTimeout

from .fake_cluster import NODES_TEXT, FakeCluster, FakeClusterClient, three_shards

NS = "vhc:cluster:unit:"
SOMEKEY_NS = "{somekey}:"  # every key of this namespace is in slot 11058, on node-7002
LABELS = ("0-5460", "5461-10922", "10923-16383")
REFUSED = "ConnectionError: Error 111 connecting to node-7000:7000. Connection refused."


def cluster(text: str = NODES_TEXT, **world) -> tuple[FakeClusterClient, FakeCluster, list]:
    shards = three_shards(text)
    fake = FakeCluster(shards, **world)
    return FakeClusterClient(fake), fake, shards


def refuse(*args, **kwargs):
    """A server call that breaks a phase: the connection is refused."""
    raise redis.ConnectionError(REFUSED.removeprefix("ConnectionError: "))


def judged(observe, check, client: FakeClusterClient, shards: list, *ns: str) -> tuple:
    """The phase run against the fake into a fresh history (after the connect phase recorded the layout, as the
    suite does), then the check on that history alone: (result, history)."""
    history = History()
    record_layout(history, shards)
    observe(client, shards, *ns, history)
    return check(history), history


def connected(client: FakeClusterClient, shards: list) -> tuple:
    history = History()
    observe_connect(client, shards, history)
    return check_connect(history), history


# ---- connect ---------------------------------------------------------------------------------------

def test_connect_is_ok_with_every_slot_covered_and_a_replica_per_shard():
    client, _, shards = cluster()
    result, _ = connected(client, shards)
    assert result.status == OK, result.detail
    assert result.detail == ("3 shards, 16384 of 16384 slots covered, cluster_state:ok; every shard has a replica, "
                             "no slot migrating"), f"{result.detail!r}"
    assert result.metrics["layout"][0] == {"slots": "0-5460", "primary": "node-7000:7000",
                                           "replicas": ["node-7003:7003"]}, f"{result.metrics['layout']}"


def test_connect_warns_about_a_shard_without_a_replica():
    client, _, shards = cluster(NODES_TEXT.replace("f5 10.0.0.15:7005@17005,node-7005 slave c2 0 0 3 connected\n", ""))
    result, _ = connected(client, shards)
    assert result.status == WARN, result.detail
    assert result.detail.endswith("; no replica for 10923-16383"), f"{result.detail!r}"


def test_connect_fails_on_a_slot_migration_left_open():
    client, fake, shards = cluster()
    fake.open[("a0", 7)] = ("migrating", "b1")
    fake.open[("b1", 7)] = ("importing", "a0")
    result, _ = connected(client, shards)
    assert result.status == FAIL, result.detail
    assert result.metrics["open_slots"] == ["slot 7 migrating on node-7000:7000 to node-7001:7001",
                                            "slot 7 importing on node-7001:7001 from node-7000:7000"], result.metrics
    assert "a slot migration was left open" in result.detail, result.detail
    assert result.detail.endswith("valkey-cli --cluster fix node-7000:7000"), f"{result.detail!r}"


def test_connect_fails_on_a_cluster_state_other_than_ok():
    client, _, shards = cluster(state="fail")
    result, _ = connected(client, shards)
    assert result.status == FAIL and "cluster_state:fail" in result.detail, result.detail


def test_connect_fails_when_slots_are_not_covered():
    text = "\n".join(line for line in NODES_TEXT.splitlines() if "c2" not in line) + "\n"  # no 10923-16383
    client, _, shards = cluster(text)
    result, _ = connected(client, shards)
    assert result.status == FAIL, result.detail
    assert result.detail == "2 shards, 10923 of 16384 slots covered, cluster_state:ok", f"{result.detail!r}"


def test_connect_fails_with_why_when_the_phase_broke():
    client, _, shards = cluster()
    client.cluster.ping = refuse
    result, history = connected(client, shards)
    assert broken(history, "connect") == REFUSED, "the phase recorded why it stopped"
    assert (result.status, result.detail) == (FAIL, f"the cluster did not answer: {REFUSED}"), f"{result}"


# ---- placement -------------------------------------------------------------------------------------

def test_placement_is_ok_when_the_server_agrees_on_slots_and_owners_hold_their_keys():
    client, fake, shards = cluster()
    result, _ = judged(observe_placement, check_placement, client, shards, NS)
    assert result.status == OK, result.detail
    assert (result.metrics["keys"], result.metrics["hash_tag_groups"]) == (300, 10), f"{result.metrics}"
    assert (result.metrics["client_slot_mismatches"], result.metrics["split_hash_tag_groups"],
            result.metrics["not_on_owner"]) == (0, [], []), f"{result.metrics}"
    assert sum(len(keys) for keys in fake.data.values()) == 300, "300 keys written, each once"


def test_placement_fails_when_the_server_hashes_the_whole_key_ignoring_hash_tags():
    client, fake, shards = cluster()
    fake.keyslot = lambda key: binascii.crc_hqx(key.encode(), 0) % 16384  # no {tag} rule
    result, _ = judged(observe_placement, check_placement, client, shards, NS)
    assert result.status == FAIL, result.detail
    assert result.metrics["client_slot_mismatches"] == 50, "the 10 groups x 5 tagged keys; untagged keys agree"
    assert result.detail.startswith("50 slot mismatches, 0 split tag groups, 0 keys"), f"{result.detail!r}"


def test_placement_fails_when_keys_land_on_a_node_that_does_not_own_their_slot():
    client, fake, shards = cluster()
    fake.write_to = {"c2": "b1"}  # node-7002's keys end up on node-7001
    result, _ = judged(observe_placement, check_placement, client, shards, NS)
    assert result.status == FAIL and fake.misrouted > 0, result.detail
    assert result.detail == f"0 slot mismatches, 0 split tag groups, {fake.misrouted} keys not on their slot's owner"
    assert len(result.metrics["not_on_owner"]) == min(10, fake.misrouted), "a sample of at most 10 keys"


def test_placement_fails_with_why_when_the_phase_broke():
    client, fake, shards = cluster()
    fake.keyslot = refuse  # CLUSTER KEYSLOT never answers
    result, history = judged(observe_placement, check_placement, client, shards, NS)
    assert broken(history, "placement") == REFUSED, "the phase recorded why it stopped"
    assert (result.status, result.detail) == (FAIL, f"the placement phase broke: {REFUSED}"), f"{result}"


# ---- moved -----------------------------------------------------------------------------------------

def test_moved_sees_the_redirect_a_plain_client_gets_and_the_cluster_client_follows():
    client, fake, shards = cluster()
    result, _ = judged(observe_moved, check_moved, client, shards, SOMEKEY_NS)
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
    result, _ = judged(observe_moved, check_moved, client, shards, SOMEKEY_NS)
    assert result.status == FAIL, result.detail
    assert result.detail == "a plain client at the wrong node got None, not MOVED", f"{result.detail!r}"


def test_moved_fails_when_the_cluster_client_does_not_follow_the_redirect():
    client, fake, shards = cluster()
    fake.follows_moved = False
    result, _ = judged(observe_moved, check_moved, client, shards, SOMEKEY_NS)
    assert result.status == FAIL, result.detail
    assert result.detail == "cluster client read None; the old owner sent it 1 MOVED (INFO errorstats)", \
        f"{result.detail!r}"


def test_moved_fails_with_why_and_puts_the_slot_back_when_the_phase_broke():
    client, fake, shards = cluster()
    client.cluster.get = refuse  # the cluster client's GET, with slot 11058 migrated to node-7000, is refused
    result, history = judged(observe_moved, check_moved, client, shards, SOMEKEY_NS)
    why = broken(history, "moved")
    assert why == f"{REFUSED}; slot 11058 moved back to node-7002:7002 with 1 key(s)", f"{why!r}"
    assert (result.status, result.detail) == (FAIL, why), f"{result}"
    assert fake.owner[11058] == "c2" and fake.open == {}, "slot 11058 put back on node-7002 all the same"
    assert fake.data["c2"] == {"{somekey}:moved": "here"}, "and its key with it"


def test_moved_and_ask_need_two_shards():
    text = "a0 10.0.0.10:7000@17000,node-7000 master - 0 0 1 connected 0-16383\n"
    client, fake, shards = cluster(text)
    moved, _ = judged(observe_moved, check_moved, client, shards, NS)
    ask, _ = judged(observe_ask, check_ask, client, shards, NS)
    assert (moved.status, moved.detail) == (WARN, "skipped: one shard only, no node to be wrong about"), f"{moved}"
    assert (ask.status, ask.detail) == (WARN, "skipped: one shard only, nowhere to migrate a slot"), f"{ask}"
    assert fake.commands == [], "nothing was sent to the one node"


# ---- ask -------------------------------------------------------------------------------------------

def test_ask_migrates_slot_7_reads_and_writes_through_ask_and_puts_it_back():
    client, fake, shards = cluster()
    result, _ = judged(observe_ask, check_ask, client, shards, NS)
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
    result, _ = judged(observe_ask, check_ask, client, shards, NS)
    assert result.status == FAIL, result.detail
    assert result.detail == "plain client on the source got a value (no ASK), not ASK", f"{result.detail!r}"


def test_ask_fails_when_a_key_is_lost_while_the_slot_moves():
    client, fake, shards = cluster()
    tag = tag_for_slot(7)
    fake.migrate_loses = {f"{NS}{{{tag}}}:19"}  # moved when the migration completes, after the reads
    result, _ = judged(observe_ask, check_ask, client, shards, NS)
    assert result.status == FAIL, result.detail
    assert result.detail == "keys changed or vanished when the slot was moved back", f"{result.detail!r}"


def test_ask_puts_the_slot_back_and_fails_with_why_when_the_cluster_client_fails_mid_migration():
    client, fake, shards = cluster()
    fake.fails_reads_while_migrating = True
    result, history = judged(observe_ask, check_ask, client, shards, NS)
    assert fake.owner[7] == "a0" and fake.open == {}, "migration cancelled"
    why = broken(history, "ask")
    assert why is not None and why.startswith("ConnectionError: Connection reset by peer; "), f"{why!r}"
    assert "open migration of slot 7 cancelled: 10 key(s) moved back" in why, "the error says the slot was put back"
    assert (result.status, result.detail) == (FAIL, why), f"{result}"
    assert (result.metrics["slot"], result.metrics["from"], result.metrics["to"]) == (
        7, "node-7000:7000", "node-7001:7001"), f"{result.metrics}"
    assert len([k for k in fake.data["a0"] if k.startswith(NS)]) == 20, "the moved keys came back to the source"


# ---- distribution ----------------------------------------------------------------------------------

def test_distribution_counts_every_written_key_on_the_primaries():
    client, _, shards = cluster()
    result, _ = judged(observe_distribution, check_distribution, client, shards, NS)
    table = distribution_table(shards, result.metrics)
    assert result.status == OK, result.detail
    per_shard = result.metrics["per_shard"]
    assert (result.metrics["written"], result.metrics["counted"]) == (3000, 3000), f"{result.metrics}"
    assert list(per_shard) == list(LABELS) and sum(per_shard.values()) == 3000, f"{per_shard}"
    assert table.row_count == 4, "a row per shard and the total"


def test_distribution_fails_when_one_node_holds_every_key():
    client, fake, shards = cluster()
    fake.write_to = {"b1": "a0", "c2": "a0"}
    result, _ = judged(observe_distribution, check_distribution, client, shards, NS)
    assert result.status == FAIL, result.detail
    assert result.metrics["per_shard"] == {"0-5460": 3000, "5461-10922": 0, "10923-16383": 0}
    assert result.detail == ("0-5460 holds 100.0% of keys for 33.3% of slots; 5461-10922 holds 0.0% of keys for "
                             "33.3% of slots; 10923-16383 holds 0.0% of keys for 33.3% of slots"), f"{result.detail!r}"


def test_distribution_fails_first_on_keys_that_are_not_there():
    client, fake, shards = cluster()
    fake.dropped = {"c2"}
    result, _ = judged(observe_distribution, check_distribution, client, shards, NS)
    counted = result.metrics["per_shard"]["0-5460"] + result.metrics["per_shard"]["5461-10922"]
    assert result.status == FAIL and result.metrics["per_shard"]["10923-16383"] == 0, result.detail
    assert result.detail.startswith(f"counted {counted} keys on the primaries, wrote 3000"), f"{result.detail!r}"


def test_distribution_fails_with_why_when_the_phase_broke():
    client, _, shards = cluster()
    client.cluster.mset_nonatomic = refuse
    result, history = judged(observe_distribution, check_distribution, client, shards, NS)
    assert broken(history, "distribution") == REFUSED, "the phase recorded why it stopped"
    assert (result.status, result.detail) == (FAIL, f"the distribution phase broke: {REFUSED}"), f"{result}"


# ---- primary_failure -------------------------------------------------------------------------------

FAULT_AT = 100.0
KILL = "SIGKILL node-7000 (local launcher, like docker kill)"


def op(group: str, seq: int, start: float, end: float, outcome: str = OP_OK, error: str | None = None,
       process: str = WRITER) -> Op:
    return Op(seq, f"{NS}w:{group}:{seq}", FAULT_AT + start, FAULT_AT + end, outcome, error, group=group,
              value=str(seq), process=process)


def failover_history(other_pause: float = 0.7) -> History:
    """Shard 0-5460 loses its primary at 0 and writes again at +3.02 s; the others keep writing; a stock
    RedisCluster (process PLAIN) writes to the lost shard beside ours."""
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
    for o in [op(LABELS[0], 0, -0.03, -0.02, process=PLAIN),
              op(LABELS[0], 1, 0.1, 0.2, OP_FAIL, "ConnectionError", process=PLAIN),
              op(LABELS[0], 2, 3.5, 3.6, process=PLAIN)]:
        history.record(o)
    history.event(events.NODE_PFAIL, "", at=FAULT_AT + 1.9)
    history.event(events.NODE_FAIL, "", at=FAULT_AT + 2.4)
    history.event(events.PROMOTED, "", at=FAULT_AT + 2.95)
    return history


KILL_FACTS = {"strict": Kill.strict, "loss_explained": Kill.loss_explained}  # what --fault auto says of itself


def primary_failure_run(history: History, shards: list, *, victim: bool = True, recovered: bool = True,
                        gave_up: str | None = None) -> ClusterFailoverView:
    """What the run records besides the writes (the layout, the fault, the shard it hit, the node promoted, a
    wait that gave up), and the run's view read back from the history alone, as --recheck does."""
    record_layout(history, shards)
    history.event(events.FAULT, KILL, at=FAULT_AT)
    history.observe(NEMESIS, INJECT, {"description": KILL, "stops": "node-7000:7000"}, at=FAULT_AT)
    if victim:
        history.observe(HARNESS, VICTIM, shards[0].label)
        record_node(history, PROMOTED_NODE, shards[0].replicas[0])
    if recovered:
        history.event(events.RECOVERED, "", at=FAULT_AT + 3.5)
    if gave_up is not None:
        history.observe(HARNESS, GAVE_UP, error=gave_up)
    return ClusterFailoverView.from_history(history, KILL_FACTS)


def holding_every_acked_write(history: History, *, lose: int = 0) -> History:
    """The final read the run records: every acknowledged write but the first `lose` found."""
    acked = [o for o in history.snapshot() if o.outcome == OP_OK]
    kept = {o.key: str(o.seq) for o in acked[lose:]}
    history.record_final_read({o.key: kept.get(o.key) for o in history.snapshot()})
    return history


def test_primary_failure_measures_the_shard_outage_the_promotion_and_the_other_shards():
    shards = three_shards()
    history = holding_every_acked_write(failover_history())
    result = check_primary_failure(primary_failure_run(history, shards), None)
    metrics = result.metrics
    assert result.status == OK, result.detail
    assert (metrics["fault"], metrics["shard"], metrics["old_primary"], metrics["promoted"]) == (
        KILL, "0-5460", "node-7000:7000", "node-7003:7003"), f"{metrics}"
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
    history = holding_every_acked_write(failover_history(), lose=2)
    result = check_primary_failure(primary_failure_run(history, shards), None)
    assert result.status == FAIL and "asynchronous replication" in result.detail, result.detail
    assert "any acknowledged write lost is a FAIL" in result.detail, result.detail
    assert result.metrics["lost"] == 2, f"{result.metrics}"


def test_primary_failure_fails_when_another_shard_paused_over_a_second():
    shards = three_shards()
    history = holding_every_acked_write(failover_history(other_pause=1.2))
    result = check_primary_failure(primary_failure_run(history, shards), None)
    assert result.status == FAIL, result.detail
    assert result.detail.endswith("; shards 5461-10922, 10923-16383 stopped serving for more than 1000 ms")
    assert result.metrics["other_shards_longest_gap_ms"]["5461-10922"] == 1200.0, f"{result.metrics}"


def test_primary_failure_fails_without_a_recovery_or_a_victim():
    shards = three_shards()
    stuck = primary_failure_run(holding_every_acked_write(failover_history()), shards, recovered=False,
                                gave_up="timed out after 60s waiting for a promotion")
    result = check_primary_failure(stuck, None)
    assert (result.status, result.detail) == (FAIL, "no recovery: timed out after 60s waiting for a promotion")
    nobody = primary_failure_run(holding_every_acked_write(failover_history()), shards, victim=False,
                                 recovered=False, gave_up="no primary stopped")
    result = check_primary_failure(nobody, None)
    assert (result.status, result.detail) == (FAIL, "no shard lost its primary: no primary stopped"), f"{result}"


def test_primary_failure_is_an_error_of_the_harness_when_the_final_read_never_got_an_answer():
    shards = three_shards()
    history = failover_history()
    history.final_read_error = "the harness could not read back the 40 written keys within 30 s: last seen " \
                               "ClusterDownError: The cluster is down"
    result = check_primary_failure(primary_failure_run(history, shards), None)
    assert result.status == ERROR, f"the harness's read failed, not Valkey: {result.status}"
    assert result.detail.endswith("writes not judged: " + history.final_read_error), result.detail
    assert result.metrics["fault"] and result.metrics["promoted"], "the result still says which fault ran and what"


def test_primary_failure_is_skipped_without_a_fault():
    result = check_primary_failure(None, "--fault none")
    assert (result.status, result.detail) == (WARN, "skipped: --fault none"), f"{result}"


# ---- rejoin ----------------------------------------------------------------------------------------
# rejoin (lib/suites/cluster_rejoin_phase.py) is the phase: the suite restarts the old primary and puts the roles back,
# recording each step (process REJOIN); check_rejoin judges that record alone.

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
    run = ClusterFailoverView("SIGKILL node-7000", shards, victim=shards[0], promoted=shards[0].replicas[0],
                             fault_at=FAULT_AT, promoted_at=FAULT_AT + 2.95)
    return client, run


def rejoined(client, run, fault, timeout: float = 30, **options):
    """The rejoin phase into a fresh history, judged: (result, history)."""
    history = History()
    rejoin(client, run, fault, timeout, history, **options)
    return check_rejoin(history, run), history


def test_rejoin_is_ok_when_the_old_primary_replicates_from_the_promoted_one():
    client, run = rejoin_cluster()
    fault = Restart()
    result, _ = rejoined(client, run, fault)
    assert fault.restores == 1, "the suite started the old primary again before the check"
    assert result.status == OK, result.detail
    assert result.metrics == {"old_primary_rejoined": True, "new_primary": "node-7003:7003"}, f"{result.metrics}"
    assert result.detail.startswith("node-7000:7000 is back as a replica of node-7003:7003"), f"{result.detail!r}"


@pytest.mark.parametrize("broken_by", [{"old_flags": "myself,master", "old_master": "-"}, {"link": "down"},
                                       {"state": "fail"}])
def test_rejoin_fails_when_the_old_primary_is_not_a_linked_replica_or_the_cluster_is_not_ok(broken_by):
    client, run = rejoin_cluster(**broken_by)
    result, _ = rejoined(client, run, Restart())
    assert result.status == FAIL and result.detail.startswith("did not rejoin"), result.detail
    assert result.metrics == {"old_primary_rejoined": False}, f"{result.metrics}"


def test_check_rejoin_judges_the_recorded_steps_alone():
    _, run = rejoin_cluster()
    history = History()
    step = Steps(history, REJOIN)
    step.note("restarted", True)
    step.note("rejoined", "replica of d3 link=up")
    result = check_rejoin(history, run)  # no client, no fault: the check cannot act on either
    assert result.status == OK and result.metrics["old_primary_rejoined"] is True, result.detail
    assert result.detail == "node-7000:7000 is back as a replica of node-7003:7003 (replica of d3 link=up); " \
                            "cluster ok", f"{result.detail!r}"
    not_started = History()
    Steps(not_started, REJOIN).note("restarted", error="was not started again within 30s")
    told = check_rejoin(not_started, run)
    assert (told.status, told.detail) == (WARN, "node-7000:7000 was not started again within 30s"), f"{told}"
    assert told.metrics == {"old_primary_restarted": False}, f"{told.metrics}"
    unwatched = check_rejoin(History(), run)
    assert (unwatched.status, unwatched.detail) == (FAIL, "did not rejoin: the rejoin was not watched"), \
        f"{unwatched}"


def test_roles_are_not_put_back_when_the_old_primary_did_not_rejoin():
    client, run = rejoin_cluster(link="down")
    failovers: list[str] = []
    client.world.on_cluster_failover = failovers.append
    result, history = rejoined(client, run, Restart(), put_back=True)
    assert result.status == FAIL and result.detail.startswith("did not rejoin"), result.detail
    assert failovers == [], "no CLUSTER FAILOVER on a node that is not a linked replica"
    assert [o.f for o in history.snapshot(REJOIN)] == ["restarted", "rejoined"], "no roles step recorded"


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
    result, _ = rejoined(client, run, Restart(), put_back=True)
    assert result.status == OK, result.detail
    assert result.metrics == {"old_primary_rejoined": True, "roles_put_back": True, "new_primary": "node-7000:7000"}
    assert "roles put back: node-7000:7000 is the primary again (CLUSTER FAILOVER), node-7003:7003 its replica" in \
        result.detail, result.detail


def test_rejoin_fails_when_the_roles_cannot_be_put_back():
    client, run = rejoin_cluster()
    client.world.on_cluster_failover = lambda node_id: None  # accepted, but the old primary never takes over
    result, _ = rejoined(client, run, Restart(), put_back=True)
    assert result.status == FAIL and "the roles were NOT put back" in result.detail, result.detail
    assert result.metrics["roles_put_back"] is False, f"{result.metrics}"


def test_rejoin_warns_when_restarting_the_old_primary_raised():
    class Unstartable(Restart):
        def heal(self, timeout: float) -> bool:
            raise WaitTimeout("timed out after 30s waiting for node-7000 to answer PING")

    client, run = rejoin_cluster()
    result, _ = rejoined(client, run, Unstartable())
    assert result.status == WARN, result.detail
    assert result.detail.startswith("node-7000:7000 was not started again: timed out"), f"{result.detail!r}"


def test_rejoin_warns_when_the_old_primary_was_not_started_again():
    client, run = rejoin_cluster()
    result, _ = rejoined(client, run, Restart(comes_back=False), 45)
    assert result.status == WARN, result.detail
    assert result.detail == "node-7000:7000 was not started again within 45s", f"{result.detail!r}"


def test_rejoin_is_skipped_without_a_promotion_and_still_undoes_the_fault():
    client, run = rejoin_cluster()
    run.promoted = None
    fault = Restart()
    result, _ = rejoined(client, run, fault)
    assert (result.status, result.detail) == (WARN, "skipped: no failover happened; the fault was undone"), \
        "nothing was promoted, but the fault must not outlive the run"
    assert fault.restores == 1 and not fault.pending_heal, "the old primary was started again"
    result, history = rejoined(client, None, None)
    assert (result.status, result.detail) == (WARN, "skipped: no failover happened"), f"{result}"
    assert history.snapshot(REJOIN) == [], "nothing to undo, nothing recorded"
