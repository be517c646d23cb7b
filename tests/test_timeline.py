"""Timeline building (offsets, buckets, downtime window) and the PNG plot, on hand-made histories."""

from __future__ import annotations

import json

import pytest

from lib.checks.timeline import FaultWindow, bucket_ops, build_timeline, fault_windows
from lib.errors import SetupError
from lib.history import FAIL, OK, UNKNOWN, History, Op
from lib.report import plot
from lib.report.timeline_table import timeline_table

FAULT_AT = 100.0


def op(seq: int, start: float, outcome: str = OK, duration: float = 0.001, error: str | None = None) -> Op:
    return Op(seq, f"k{seq}", FAULT_AT + start, FAULT_AT + start + duration, outcome, error)


def failover_history() -> History:
    """ok every 50 ms until the fault, errors until +2.0 s, ok again after; sentinel events in between."""
    history = History()
    for seq, i in enumerate(range(-10, 60)):
        at = i * 0.05
        outcome = OK if at < 0 or at >= 2.0 else (UNKNOWN if at < 0.1 else FAIL)
        history.record(op(seq, at, outcome, error=None if outcome == OK else "ConnectionError: refused"))
    history.event("fault", "SIGKILL master", at=FAULT_AT)
    for _ in range(3):  # each sentinel announces it
        history.event("+sdown", "master mymaster 127.0.0.1 6379", at=FAULT_AT + 1.2)
    history.event("+switch-master", "mymaster 127.0.0.1 6379 127.0.0.1 6380", at=FAULT_AT + 1.95)
    return history


def test_buckets_count_ok_and_errors_per_interval_including_empty_ones():
    ops = [op(0, -0.15), op(1, -0.05), op(2, 0.02, FAIL), op(3, 0.03, UNKNOWN), op(4, 0.35)]
    buckets = bucket_ops(ops, FAULT_AT, 0.1)
    assert [(round(b.start_s, 2), b.ok, b.error) for b in buckets] == [
        (-0.2, 1, 0), (-0.1, 1, 0), (0.0, 0, 2), (0.1, 0, 0), (0.2, 0, 0), (0.3, 1, 0)], buckets


def test_buckets_of_no_ops_is_empty_and_a_zero_interval_is_refused():
    assert bucket_ops([], FAULT_AT) == []
    with pytest.raises(ValueError):
        bucket_ops([op(0, 0.0)], FAULT_AT, 0)


def test_timeline_gives_offsets_from_the_fault_and_counts_repeated_events():
    timeline = build_timeline(failover_history(), FAULT_AT)
    by_name = {e.name: e for e in timeline.events}
    assert by_name["fault"].offset_s == pytest.approx(0.0)
    assert by_name["+sdown"].offset_s == pytest.approx(1.2) and by_name["+sdown"].count == 3
    assert by_name["+switch-master"].offset_s == pytest.approx(1.95)
    assert by_name["client: recovered"].offset_s == pytest.approx(2.001), by_name
    assert [e.offset_s for e in timeline.events] == sorted(e.offset_s for e in timeline.events)


def test_downtime_window_runs_from_last_ok_to_first_ok_after_the_fault():
    timeline = build_timeline(failover_history(), FAULT_AT)
    start, end = timeline.downtime
    assert start == pytest.approx(-0.049), timeline.downtime  # the op started at -0.05 s ended 1 ms later
    assert end == pytest.approx(2.001)
    assert timeline.downtime_ms == pytest.approx(2050, abs=0.1)
    assert timeline.ops_total == 70 and timeline.ops_ok == 30  # 10 before, 40 failed, 20 after


def test_no_recovery_leaves_the_window_open():
    history = History()
    history.record(op(0, -0.1))
    history.record(op(1, 0.1, FAIL, error="ConnectionError"))
    timeline = build_timeline(history, FAULT_AT)
    assert timeline.downtime[1] is None and timeline.downtime_ms is None
    assert timeline.to_dict()["downtime_window_s"][1] is None


def test_timeline_and_history_serialise_to_json():
    history = failover_history()
    history.ops[0].group = "0-5460"
    payload = {"timeline": build_timeline(history, FAULT_AT).to_dict(), "history": history.to_dict(FAULT_AT)}
    loaded = json.loads(json.dumps(payload))
    assert loaded["history"]["ops"][0] == {"t_s": -0.5, "ms": 1.0, "outcome": "ok", "key": "k0", "group": "0-5460"}
    assert {"t_s": 1.2, "event": "+sdown", "detail": "master mymaster 127.0.0.1 6379"} in loaded["history"]["events"]
    assert loaded["timeline"]["downtime_ms"] == 2050.0
    assert sum(b[1] + b[2] for b in loaded["timeline"]["buckets"]) == 70
    again = build_timeline(History.from_dict(loaded["history"]), 0.0)  # the saved times are from the fault
    assert again.to_dict() == loaded["timeline"], "a saved history gives the same timeline (--recheck)"


def test_table_shows_offsets_in_seconds(capsys):
    from rich.console import Console

    Console(width=120).print(timeline_table(build_timeline(failover_history(), FAULT_AT)))
    out = capsys.readouterr().out
    assert "+1.200 s" in out and "+sdown (x3)" in out and "2,050 ms" in out, out


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    written = plot.plot_timeline(build_timeline(failover_history(), FAULT_AT), tmp_path / "sub" / "t.png", "test")
    data = written.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    assert len(data) > 5000, len(data)


def test_missing_matplotlib_is_a_one_line_setup_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(SetupError) as error:
        plot.require_matplotlib()
    assert "pip install matplotlib" in str(error.value) and "\n" not in str(error.value)


def paused_history() -> History:
    """A pause from the fault to +4.0 s (resumed by the run), over the failover history."""
    history = failover_history()
    history.events[0].detail = "pause: SIGSTOP valkey-master"
    history.event("healed", "SIGCONT valkey-master", at=FAULT_AT + 4.0)
    return history


def test_a_fault_window_runs_from_the_fault_to_its_heal():
    timeline = build_timeline(paused_history(), FAULT_AT)
    assert timeline.fault_windows == [FaultWindow(0.0, 4.0, "pause: SIGSTOP valkey-master")], timeline.fault_windows
    assert timeline.to_dict()["fault_windows_s"] == [[0.0, 4.0]]


def test_a_fault_by_hand_starts_when_seen_and_an_unhealed_one_stays_open():
    history = History()
    history.event("fault", "kill it yourself", at=FAULT_AT - 3.0)
    history.event("fault seen", "the master stopped answering", at=FAULT_AT)
    assert fault_windows(history, FAULT_AT) == [FaultWindow(0.0, None, "kill it yourself")]


def test_each_fault_gets_its_own_window_and_heals_close_the_oldest_first():
    history = History()
    history.event("fault", "stop 2 sentinels", at=FAULT_AT)
    history.event("fault", "SIGKILL valkey-master", at=FAULT_AT + 1.0)
    history.event("healed", "sentinels back", at=FAULT_AT + 5.0)
    assert [(w.start_s, w.end_s) for w in fault_windows(history, FAULT_AT)] == [(0.0, 5.0), (1.0, None)]


def test_table_marks_a_healed_fault_window_and_leaves_a_kill_alone(capsys):
    from rich.console import Console

    Console(width=160).print(timeline_table(build_timeline(paused_history(), FAULT_AT)))
    out = capsys.readouterr().out
    assert "fault window" in out and "4.00 s (+0.00 s to +4.00 s): pause: SIGSTOP" in out, out
    Console(width=160).print(timeline_table(build_timeline(failover_history(), FAULT_AT)))
    assert "fault window" not in capsys.readouterr().out, "a kill the run never heals adds no row"


def test_plot_shades_healed_and_unhealed_faults(tmp_path):
    pytest.importorskip("matplotlib")
    for name, history in (("paused", paused_history()), ("killed", failover_history())):
        written = plot.plot_timeline(build_timeline(history, FAULT_AT), tmp_path / f"{name}.png", name)
        assert written.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_plot_shades_each_fault_to_its_heal_or_to_the_end_of_the_plot():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = paused_history()
    history.event("fault", "SIGKILL valkey-master", at=FAULT_AT + 5.0)
    fig, ax = plt.subplots()
    try:
        plot._shade_faults(ax, build_timeline(history, FAULT_AT), plot_end=6.5)
        spans = sorted((round(p.get_x(), 3), round(p.get_x() + p.get_width(), 3)) for p in ax.patches)
        labels = ax.get_legend_handles_labels()[1]
    finally:
        plt.close(fig)
    assert spans == [(0.0, 4.0), (5.0, 6.5)], spans
    assert labels == ["fault until healed", "fault (not healed in the run)"], labels
