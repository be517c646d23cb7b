"""Checkers read a recorded history afterwards and give the verdict: downtime and lost writes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from lib.history import OK, Op


@dataclass
class Outage:
    """The client could not complete a write from last_ok_end until first_ok_end."""

    last_ok_end: float
    first_ok_end: float | None  # None: it never recovered within the run
    failed_ops: int
    first_error: str | None

    @property
    def downtime_ms(self) -> float | None:
        return None if self.first_ok_end is None else (self.first_ok_end - self.last_ok_end) * 1000


def outage_around(ops: list[Op], fault_at: float) -> Outage | None:
    """The first run of failed operations that ends after fault_at, measured ok-to-ok.

    Measuring from the last success before the failures to the first success after them does not
    depend on how errors are classified, or on retries hidden inside one call.
    """
    ops = sorted(ops, key=lambda op: op.start)
    last_ok_end = None
    for i, op in enumerate(ops):
        if op.outcome == OK:
            last_ok_end = op.end
            continue
        if op.end < fault_at or last_ok_end is None:
            continue
        failed = 0
        for later in ops[i:]:
            if later.outcome == OK:
                return Outage(last_ok_end, later.end, failed, ops[i].error)
            failed += 1
        return Outage(last_ok_end, None, failed, ops[i].error)
    return None


def longest_gap_ms(ops: list[Op], start: float, end: float) -> float:
    """The longest time between successful completions in [start, end] (the 'kept serving' check)."""
    ends = sorted(op.end for op in ops if op.outcome == OK and start <= op.end <= end)
    points = [start, *ends, end]
    return max((b - a) * 1000 for a, b in zip(points, points[1:], strict=False)) if len(points) > 1 else 0.0


def error_counts(ops: Iterable[Op]) -> dict[str, int]:
    return dict(Counter((op.error or "").split(":")[0] for op in ops if op.outcome != OK))


@dataclass
class LossReport:
    acked: int
    lost: int
    confirmed: int  # acked and confirmed by WAIT
    confirmed_lost: int
    lost_keys: list[str]  # a sample, for the report
    lost_ops: list[Op] = field(default_factory=list, repr=False)


def lost_writes(ops: list[Op], read_many: Callable[[list[str]], list[str | None]],
                chunk: int = 500) -> LossReport:
    """Look up every acknowledged write; a key missing or holding an older value is lost."""
    acked = [op for op in ops if op.outcome == OK]
    lost: list[Op] = []
    for i in range(0, len(acked), chunk):
        batch = acked[i:i + chunk]
        values = read_many([op.key for op in batch])
        lost += [op for op, value in zip(batch, values, strict=True) if value != str(op.seq)]
    confirmed = [op for op in acked if op.confirmed]
    return LossReport(len(acked), len(lost), len(confirmed), sum(1 for op in lost if op.confirmed),
                      [op.key for op in lost[:20]], lost)
