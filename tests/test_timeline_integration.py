"""--plot and the saved history on real stacks: the PNG is written and the JSON holds the events."""

from __future__ import annotations

import json

import pytest

from conftest import outage_in_saved_ops, run_script, running_stack, saved_op_end
from lib.runs.ha_failover import WARMUP_OPS
from lib.runs.ha_recovery import SETTLE_OPS

pytestmark = pytest.mark.integration

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def metrics_of(path, scenario: str) -> dict:
    return {s["scenario"]: s for s in json.loads(path.read_text())["scenarios"]}[scenario]["metrics"]


def test_ha_plot_and_json_history_hold_the_sentinel_events(ha_stack, tmp_path):
    pytest.importorskip("matplotlib")
    out, png = tmp_path / "ha.json", tmp_path / "plots" / "ha.png"
    proc = run_script("ha_test.py", "--json", str(out), "--plot", str(png), state_dir=ha_stack.state_dir)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5000, png.stat().st_size
    kill = metrics_of(out, "master_kill")
    events: dict[str, float] = {}
    for event in kill["timeline"]["events"]:  # in time order; a later +sdown can be the old master as a replica
        events.setdefault(event["event"], event["t_s"])
    assert events["fault"] == 0.0
    assert 1.5 <= events["+sdown"] <= events["+switch-master"] <= 15, events  # down-after-milliseconds 2000
    assert "client: recovered" in events and "5 ms probe: recovered" in events, events
    history = kill["history"]
    last_ok, first_ok = outage_in_saved_ops(history["ops"])
    assert kill["timeline"]["downtime_window_s"] == pytest.approx([last_ok, first_ok], abs=0.002), \
        f"the saved ops say {last_ok:+.3f} s to {first_ok:+.3f} s"
    assert kill["downtime_ms"] == pytest.approx((first_ok - last_ok) * 1000, abs=2), kill["downtime_ms"]
    assert last_ok <= 0.1 and events["+sdown"] < first_ok, "writes stop at the kill, resume after the sentinels saw it"
    inside = [op for op in history["ops"] if last_ok < saved_op_end(op) < first_ok]
    assert inside and all(op["outcome"] != "ok" for op in inside), "every op that ended inside the window failed"
    assert abs(first_ok - events["5 ms probe: recovered"]) <= 0.3, "the independent probe saw the same recovery"
    ok_before = sum(1 for op in history["ops"] if op["outcome"] == "ok" and saved_op_end(op) < 0)
    ok_after = sum(1 for op in history["ops"] if op["outcome"] == "ok" and op["t_s"] > first_ok)
    assert ok_before >= WARMUP_OPS and ok_after >= SETTLE_OPS, f"{ok_before} acked before the kill, {ok_after} after"
    assert {"+sdown", "+switch-master"} <= {e["event"] for e in history["events"]}, history["events"]
    reconnect = metrics_of(out, "reconnect")
    assert reconnect["plain_downtime_ms"] is not None and reconnect["plain_after_switch_ms"] is not None, reconnect
    assert "+sdown" in proc.stdout and " s │" in proc.stdout, proc.stdout[-3000:]


def test_cluster_timeline_records_fail_flags_and_promotion(tmp_path):
    pytest.importorskip("matplotlib")
    out, png = tmp_path / "cluster.json", tmp_path / "cluster.png"
    with running_stack("cluster", tmp_path / "stack", bus_offset=10000) as stack:
        proc = run_script("cluster_test.py", "--json", str(out), "--plot", str(png), state_dir=stack.state_dir)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert png.read_bytes()[:8] == PNG_MAGIC
    failure = metrics_of(out, "primary_failure")
    events: dict[str, float] = {}
    for event in failure["timeline"]["events"]:  # in time order: the first sighting of each
        events.setdefault(event["event"], event["t_s"])
    assert events["fault"] == 0.0
    # The first failure flag our 10-20 ms poll of the replicas sees: usually fail? (PFAIL), but in a CI
    # rehearsal the poll saw only fail (the replica learnt FAIL from the primaries, or PFAIL was brief).
    flagged = events.get("node flagged pfail", events.get("node flagged fail"))
    assert flagged is not None, f"no failure flag of the killed primary was recorded: {events}"
    assert 0 < flagged <= events["promoted"] <= 15, events  # cluster-node-timeout 2000
    victim_ops = [op for op in failure["history"]["ops"] if op.get("group") == failure["shard"]]
    last_ok, first_ok = outage_in_saved_ops(victim_ops)
    assert last_ok <= flagged, "the shard stopped taking writes before anyone flagged it"
    # No write reaches the shard before a replica owns its slots; the promotion is seen by a 10-20 ms poll.
    assert first_ok >= events["promoted"] - 0.1, f"the shard wrote again at {first_ok:+.3f} s, promoted " \
                                                 f"{events['promoted']:+.3f} s"
    assert failure["ours_after_promotion_ms"] == pytest.approx((first_ok - events["promoted"]) * 1000, abs=3), \
        f"first ok write on {failure['shard']} at {first_ok:+.3f} s in the saved ops"
    assert failure["plain_after_promotion_ms"] is not None, failure
    groups = {op.get("group") for op in failure["history"]["ops"]}
    assert len(groups) == 3, groups  # one writer per shard


def test_plot_without_matplotlib_is_a_one_line_setup_error(tmp_path):
    fake = tmp_path / "fake" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    proc = run_script("ha_test.py", "--plot", str(tmp_path / "x.png"), timeout=60,
                      env={"PYTHONPATH": str(tmp_path / "fake")})
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr
    assert "pip install matplotlib" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
