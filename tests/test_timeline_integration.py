"""--plot and the saved history on real stacks: the PNG is written and the JSON holds the events."""

from __future__ import annotations

import json

import pytest

from conftest import run_script, running_stack

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
    events = {e["event"]: e["t_s"] for e in kill["timeline"]["events"]}
    assert events["fault"] == 0.0
    assert 1.5 <= events["+sdown"] <= events["+switch-master"] <= 15, events  # down-after-milliseconds 2000
    assert "client: recovered" in events and "5 ms probe: recovered" in events, events
    start, end = kill["timeline"]["downtime_window_s"]
    assert start <= 0.1 and end == pytest.approx(events["client: recovered"], abs=0.002), (start, end)
    history = kill["history"]
    assert len(history["ops"]) == kill["ops_total"] and {"+sdown", "+switch-master"} <= {
        e["event"] for e in history["events"]}
    assert any(op["outcome"] != "ok" and op["t_s"] > 0 for op in history["ops"]), "no failed op after the fault"
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
    events = {e["event"]: e["t_s"] for e in failure["timeline"]["events"]}
    assert events["fault"] == 0.0
    assert 0 < events["node flagged pfail"] <= events["promoted"] <= 15, events  # cluster-node-timeout 2000
    assert events["promoted"] == pytest.approx(failure["promoted_after_s"], abs=0.002)
    assert failure["ours_after_promotion_ms"] is not None and failure["plain_after_promotion_ms"] is not None
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
