"""The HA suite against a real local stack: a real SIGKILL of the real master, checked end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from conftest import (
    Checks,
    assert_recheck_agrees,
    checks_in,
    checks_of,
    first_events,
    ha_downtime_limit_ms,
    outage_in_saved_ops,
    run_script,
    saved_op_end,
)
from lib.launcher.local_stack import LocalStack
from lib.phases.ha_failover import WARMUP_OPS
from lib.phases.ha_recovery import SETTLE_OPS
from test_readme import checked_block_outputs, run_block_checked

pytestmark = pytest.mark.integration

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def metrics_of(path, scenario: str) -> dict:
    return checks_of(path)[scenario]["metrics"]


def scenarios(path) -> dict[str, dict]:
    report = json.loads(path.read_text())
    assert report["suite"] == "ha"
    return checks_in(report)


def assert_history_holds_the_events(out, png, stdout: str) -> None:
    """--plot wrote a PNG, and the saved history holds the sentinel events and an outage that the saved ops
    (read here, a second computation) agree with."""
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5000, png.stat().st_size
    kill = metrics_of(out, "master_kill")
    events: dict[str, float] = {}
    for event in kill["timeline"]["events"]:  # in time order; a later +sdown can be the old master as a replica
        events.setdefault(event["event"], event["t_s"])
    assert events["fault"] == 0.0
    # down-after-milliseconds 2000; a failed leader election adds 2 x failover-timeout (ha_downtime_limit_ms)
    assert 1.5 <= events["+sdown"] <= events["+switch-master"] <= ha_downtime_limit_ms(kill) / 1000, events
    assert "client: recovered" in events and "5 ms probe: recovered" in events, events
    saved = checks_of(out)
    writes = saved.ops()
    last_ok, first_ok = outage_in_saved_ops(writes)
    assert kill["timeline"]["downtime_window_s"] == pytest.approx([last_ok, first_ok], abs=0.002), \
        f"the saved ops say {last_ok:+.3f} s to {first_ok:+.3f} s"
    assert kill["downtime_ms"] == pytest.approx((first_ok - last_ok) * 1000, abs=2), kill["downtime_ms"]
    assert last_ok <= 0.1 and events["+sdown"] < first_ok, "writes stop at the kill, resume after the sentinels saw it"
    inside = [op for op in writes if last_ok < saved_op_end(op) < first_ok]
    assert inside and all(op["outcome"] != "ok" for op in inside), "every op that ended inside the window failed"
    probe_gap = abs(first_ok - events["5 ms probe: recovered"])
    if probe_gap > 0.3:  # loaded: +switch-master came late, and the probe follows the announcement; ours did not
        reconnect = checks_of(out)["reconnect"]
        assert reconnect["status"] == "WARN" and "the probe" in reconnect["detail"], \
            f"ours and the probe recovered {probe_gap:.2f} s apart; reconnect did not say why: {reconnect['detail']}"
    ok_before = sum(1 for op in writes if op["outcome"] == "ok" and saved_op_end(op) < 0)
    ok_after = sum(1 for op in writes if op["outcome"] == "ok" and op["t_s"] > first_ok)
    assert ok_before >= WARMUP_OPS and ok_after >= SETTLE_OPS, f"{ok_before} acked before the kill, {ok_after} after"
    assert {"+sdown", "+switch-master"} <= {e["event"] for e in saved.events}, saved.events
    reconnect = metrics_of(out, "reconnect")
    assert reconnect["plain_downtime_ms"] is not None and reconnect["plain_after_switch_ms"] is not None, reconnect
    assert "+sdown" in stdout and " s │" in stdout, stdout[-3000:]


README_HA_BLOCK = "sentinel-ha-ha-test-py-without-docker"


def test_the_readmes_ha_block_fails_over_without_losing_confirmed_writes(tmp_path):
    """The README's HA block as written (marked `checked`); right after its ha_test.py line, on the stack
    it brought up: the whole run, its --plot PNG and saved history (assert_history_holds_the_events), and
    the servers themselves. Then the block's status / kill / start / down lines."""
    commands, out, png = checked_block_outputs(README_HA_BLOCK, "app/ha_test.py")
    root = tmp_path / "stacks"

    def check(stdout: str) -> None:
        stack = LocalStack.load(root / "ha")
        check_master_kill_run(stack, out, png, stdout)

    run_block_checked(commands, root, "app/ha_test.py", check=check)


def check_master_kill_run(ha_stack: LocalStack, out: Path, png: Path, stdout: str) -> None:
    old_port = ha_stack.service("valkey-master").port
    assert_history_holds_the_events(out, png, stdout)
    assert_recheck_agrees("ha_test.py", out)
    result = scenarios(out)
    # reconnect may be WARN only when our client wrote again before the probe (see check_reconnect).
    allowed = {name: ({"OK", "WARN"} if name == "reconnect" else {"OK"}) for name in result}
    assert all(s["status"] in allowed[name] for name, s in result.items()), \
        {k: (v["status"], v["detail"]) for k, v in result.items()}

    kill = result["master_kill"]["metrics"]
    assert kill["fault"].startswith("SIGKILL valkey-master")
    assert 1500 <= kill["downtime_ms"] <= ha_downtime_limit_ms(kill), result["master_kill"]["detail"]
    assert kill["ops_ok"] >= 400

    new = result["new_master"]["metrics"]
    assert new["old_master"].endswith(f":{old_port}")
    assert not new["master"].endswith(f":{old_port}") and new["role"] == "master"
    assert len(set(new["sentinel_views"].values())) == 1

    loss = result["consistency"]["metrics"]
    assert loss["wait_confirmed"] > 0 and loss["wait_confirmed_lost"] == 0

    # Our recovery read from the saved writer ops by this test, against the independent 5 ms probe's.
    reconnect = result["reconnect"]["metrics"]
    last_ok, first_ok = outage_in_saved_ops(result.ops())
    assert reconnect["ours_downtime_ms"] == pytest.approx((first_ok - last_ok) * 1000, abs=2), reconnect
    probe_back = {e["event"]: e["t_s"] for e in kill["timeline"]["events"]}["5 ms probe: recovered"]
    assert first_ok - probe_back <= 0.1, f"ours wrote again at {first_ok:+.3f} s, the probe at {probe_back:+.3f} s"
    assert 1500 <= reconnect["probe_downtime_ms"] <= ha_downtime_limit_ms(kill), f"the probe saw the kill too: " \
                                                                                  f"{reconnect}"

    sync = result["replica_sync"]["metrics"]
    assert sync["old_master_rejoined"] is True
    assert sync["connected_replicas"] == 2

    # The old master really replicates from the new one (asked directly, not through the script).
    old = redis.Redis(port=old_port, decode_responses=True)
    info = old.info("replication")
    assert info["role"] == "slave" and new["master"].endswith(f":{info['master_port']}")
    assert info["master_link_status"] == "up"
    # And the run cleaned up after itself: no key of its namespace is left.
    master = redis.Redis(port=int(new["master"].rsplit(":", 1)[1]), decode_responses=True)
    assert list(master.scan_iter(match="vhc:ha:*")) == []


def assert_graceful_loss_reported(result: Checks, returncode: int) -> None:
    """A SENTINEL FAILOVER run (one run: tests/test_ha_defects.py, --allow-destructive on a stack the
    harness does not see as its own): every write acknowledged between the promotion order and the switch
    is reported lost, with the reason, and the exit code follows the verdict."""
    kill = result["master_kill"]["metrics"]
    assert kill["fault"].startswith("SENTINEL FAILOVER"), kill["fault"]
    assert result["reconnect"]["status"] in ("OK", "WARN"), result["reconnect"]["detail"]
    assert result["replica_sync"]["metrics"]["old_master_rejoined"] is True

    # Sentinel sends REPLICAOF NO ONE to the replica it announced as +selected-slave on its next timer
    # tick (it runs at 10-19 Hz), so 0.25 s later that replica has left the old master for certain.
    # Until our client follows +switch-master (~1 s after the order: Sentinel sees the promotion by
    # INFO, polled every second) it writes to the old master, which drops those writes when it is
    # demoted. Every write acknowledged in between is lost: the report may not count fewer.
    events = first_events(result.history)
    selected, switched = events["+selected-slave"], events["+switch-master"]
    surely_lost = [op for op in result.ops()
                   if op["outcome"] == "ok" and op["t_s"] > selected + 0.25 and saved_op_end(op) < switched - 0.05]
    loss = result["consistency"]
    assert loss["metrics"]["lost"] >= len(surely_lost) > 0, (len(surely_lost), selected, switched, loss["detail"])
    assert loss["status"] in ("FAIL", "WARN"), f"lost writes reported as {loss['status']}: {loss['detail']}"
    first_lost, last_lost = loss["metrics"]["lost_between_s"]
    assert first_lost >= 0 and last_lost <= switched + 0.25, (f"writes acknowledged at {first_lost:+.2f}.."
                                                              f"{last_lost:+.2f} s lost; switch {switched:+.2f} s")
    if loss["status"] == "FAIL":
        assert "SENTINEL FAILOVER does not pause the old master" in loss["detail"], loss["detail"]
    assert returncode == (1 if loss["status"] == "FAIL" else 0), (returncode, loss["status"])


def test_fault_none_runs_crud_and_skips_the_failover(ha_stack, tmp_path):
    out = tmp_path / "ha.json"
    proc = run_script("ha_test.py", "--fault", "none", "--json", str(out), state_dir=ha_stack.state_dir)
    assert proc.returncode == 0, proc.stdout[-3000:]
    result = scenarios(out)
    assert result["crud"]["status"] == "OK"
    assert result["master_kill"]["status"] == "WARN" and "skipped" in result["master_kill"]["detail"]
    assert result["new_master"]["status"] == "OK"


def test_unreachable_sentinels_are_a_one_line_setup_error(tmp_path):
    from lib.util import free_ports

    port = free_ports(1)[0]
    proc = run_script("ha_test.py", "--sentinel", f"127.0.0.1:{port}", timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: no sentinel reachable"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_unknown_master_name_is_a_setup_error(ha_stack):
    proc = run_script("ha_test.py", "--master-name", "nosuchmaster", "--fault", "none", state_dir=ha_stack.state_dir)
    assert proc.returncode == 2
    assert "nosuchmaster" in proc.stderr and "Traceback" not in proc.stderr


def test_docker_fault_without_docker_is_a_setup_error(ha_stack):
    proc = run_script("ha_test.py", "--fault", "docker", state_dir=ha_stack.state_dir,
                      env={"PATH": "/nonexistent"})
    assert proc.returncode == 2
    assert "docker" in proc.stderr and "Traceback" not in proc.stderr
