"""A failover timeline built from a recorded history: events as offsets from the fault, the downtime
window, and operations per interval (ok vs error).

Generic on purpose: any suite that records Ops and Events in a History (HA, cluster, the HTTP cache)
gets the terminal table, the JSON and the plot from one call, build_timeline(history, fault_at).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lib import events
from lib.checks.checker import outage_around
from lib.history import OK, History, Op

DEFAULT_INTERVAL_S = 0.1  # 100 ms buckets: fine enough to see a 2-3 s outage edge to within a bucket


@dataclass(frozen=True)
class TimelineEvent:
    offset_s: float  # seconds from the fault (negative: before it)
    name: str
    detail: str = ""
    count: int = 1  # the same event seen from several sources (each sentinel announces it)


@dataclass(frozen=True)
class Bucket:
    start_s: float  # offset from the fault of the bucket's start
    ok: int
    error: int  # fail + unknown


@dataclass(frozen=True)
class FaultWindow:
    """From the fault taking effect to its heal, as offsets; end None: not healed within the run."""

    start_s: float
    end_s: float | None
    what: str = ""  # the fault's description

    @property
    def duration_s(self) -> float | None:
        return None if self.end_s is None else self.end_s - self.start_s


@dataclass
class Timeline:
    interval_s: float
    events: list[TimelineEvent]
    buckets: list[Bucket]
    downtime: tuple[float, float | None] | None  # (last ok before, first ok after) as offsets; None: no outage
    ops_total: int = 0
    ops_ok: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    fault_windows: list[FaultWindow] = field(default_factory=list)

    @property
    def downtime_ms(self) -> float | None:
        if self.downtime is None or self.downtime[1] is None:
            return None
        return (self.downtime[1] - self.downtime[0]) * 1000

    def to_dict(self) -> dict[str, Any]:
        """The summary for the JSON report (the raw history goes next to it: History.to_dict)."""
        return {
            "interval_s": self.interval_s,
            "events": [{"t_s": round(e.offset_s, 3), "event": e.name, "detail": e.detail, "count": e.count}
                       for e in self.events],
            "downtime_window_s": None if self.downtime is None else
            [round(self.downtime[0], 3), None if self.downtime[1] is None else round(self.downtime[1], 3)],
            "downtime_ms": None if self.downtime_ms is None else round(self.downtime_ms, 1),
            "buckets": [[round(b.start_s, 3), b.ok, b.error] for b in self.buckets],
            "ops_total": self.ops_total, "ops_ok": self.ops_ok,
            "fault_windows_s": [[round(w.start_s, 3), None if w.end_s is None else round(w.end_s, 3)]
                                for w in self.fault_windows],
        }


def bucket_ops(ops: list[Op], fault_at: float, interval_s: float = DEFAULT_INTERVAL_S) -> list[Bucket]:
    """Count operations by the interval they completed in, from the first to the last, empty ones included
    (an empty bucket in the middle of a run is a stall, and the plot must show it)."""
    if not ops:
        return []
    if interval_s <= 0:
        raise ValueError(f"interval_s must be positive, got {interval_s}")
    index = [int((op.end - fault_at) // interval_s) for op in ops]
    low, high = min(index), max(index)
    ok = [0] * (high - low + 1)
    error = [0] * (high - low + 1)
    for op, i in zip(ops, index, strict=True):
        if op.outcome == OK:
            ok[i - low] += 1
        else:
            error[i - low] += 1
    return [Bucket((low + i) * interval_s, ok[i], error[i]) for i in range(high - low + 1)]


def event_rows(history: History, fault_at: float) -> list[TimelineEvent]:
    """Server-side events as offsets; an event seen again with the same detail is counted, not repeated."""
    first: dict[tuple[str, str], list] = {}
    for event in sorted(history.events, key=lambda e: e.at):
        key = (event.name, event.detail)
        if key in first:
            first[key][1] += 1
        else:
            first[key] = [event.at, 1]
    return [TimelineEvent(at - fault_at, name, detail, count) for (name, detail), (at, count) in first.items()]


def client_rows(ops: list[Op], fault_at: float, who: str = "client") -> list[TimelineEvent]:
    """What the client saw: its last success before the outage, first error, and first success after."""
    outage = outage_around(ops, fault_at)
    if outage is None:
        return []
    rows = [TimelineEvent(outage.last_ok_end - fault_at, events.client_row(who, events.CLIENT_LAST_OK))]
    first_fail = min((op for op in ops if op.outcome != OK and op.end >= fault_at), key=lambda op: op.end,
                     default=None)
    if first_fail is not None:
        rows.append(TimelineEvent(first_fail.end - fault_at, events.client_row(who, events.CLIENT_FIRST_ERROR),
                                  first_fail.error or ""))
    if outage.first_ok_end is not None:
        between = (f"{outage.failed_ops} failed in between" if outage.failed_ops else
                   f"none failed: a write blocked {outage.downtime_ms:,.0f} ms inside the client, then succeeded")
        rows.append(TimelineEvent(outage.first_ok_end - fault_at, events.client_row(who, events.CLIENT_ROW_RECOVERED),
                                  between))
    return rows


def fault_windows(history: History, fault_at: float) -> list[FaultWindow]:
    """Each fault's window: from FAULT (or FAULT_SEEN, when a fault by hand took effect) to the HEALED after it.

    Heals close the oldest open window first, as faults are restored in the order they were injected.
    """
    windows: list[list] = []  # [start, end, what], open while end is None
    for event in sorted(history.events, key=lambda e: e.at):
        open_ = [w for w in windows if w[1] is None]
        if event.name == events.FAULT:
            windows.append([event.at - fault_at, None, event.detail])
        elif event.name == events.FAULT_SEEN and open_:
            open_[-1][0] = event.at - fault_at
        elif event.name == events.HEALED and open_:
            open_[0][1] = event.at - fault_at
    return [FaultWindow(start, end, what) for start, end, what in windows]


def build_timeline(history: History, fault_at: float, *, ops: list[Op] | None = None,
                   interval_s: float = DEFAULT_INTERVAL_S, who: str = "client",
                   extra_events: list[TimelineEvent] | None = None) -> Timeline:
    """The timeline of one run. ops: the operations that define the outage (default: all of history's,
    e.g. pass only the affected shard's), while the buckets always count every operation.
    extra_events: rows from elsewhere (e.g. when an independent probe recovered)."""
    all_ops = history.snapshot()
    outage_ops = all_ops if ops is None else ops
    outage = outage_around(outage_ops, fault_at)
    window = None if outage is None else (
        outage.last_ok_end - fault_at, None if outage.first_ok_end is None else outage.first_ok_end - fault_at)
    events = sorted(event_rows(history, fault_at) + client_rows(outage_ops, fault_at, who) + (extra_events or []),
                    key=lambda e: e.offset_s)
    return Timeline(interval_s, events, bucket_ops(all_ops, fault_at, interval_s), window,
                    len(all_ops), sum(1 for op in all_ops if op.outcome == OK),
                    fault_windows=fault_windows(history, fault_at))
