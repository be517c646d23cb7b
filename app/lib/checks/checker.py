"""The measures the checks share, read from recorded ops afterwards: the outage around a fault, the longest gap
between acknowledged writes, errors by type. Lost writes are lib/checks/accounting.py's."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from lib.history import OK, Op

BLOCKED_WRITE_S = 0.5  # a gap this long between acknowledged writes is an outage even with no failed write


@dataclass
class Outage:
    """The client could not complete a write from last_ok_end until first_ok_end."""

    last_ok_end: float
    first_ok_end: float | None  # None: it never recovered within the run
    failed_ops: int  # 0: no write failed, one blocked through the outage inside the client and then succeeded
    first_error: str | None

    @property
    def downtime_ms(self) -> float | None:
        return None if self.first_ok_end is None else (self.first_ok_end - self.last_ok_end) * 1000


def outage_around(ops: list[Op], fault_at: float) -> Outage | None:
    """The longest stretch without an acknowledged write after the fault, measured ok-to-ok; None if there was none.

    The stretches run between consecutive acknowledged writes, from the last one at or before the fault on. A
    stretch is an outage when a write that ended after the fault failed inside it, or when it lasted at least
    BLOCKED_WRITE_S: a client that retries inside one call through the whole failover and then succeeds (redis-py's
    RedisCluster with its default Retry often does) records no failed write, yet it could not write. A failure
    after the last acknowledged write is an outage that never ended, and it is the one returned.

    Measuring from one success to the next does not depend on how errors are classified, or on retries hidden
    inside one call.
    """
    ok_ends = sorted(op.end for op in ops if op.outcome == OK)
    failed = sorted((op for op in ops if op.outcome != OK and op.end >= fault_at), key=lambda op: op.start)
    points = [end for end in ok_ends if end <= fault_at][-1:] + [end for end in ok_ends if end > fault_at]
    if not points:
        return None
    if tail := [op for op in failed if op.end > points[-1]]:
        return Outage(points[-1], None, len(tail), tail[0].error)
    longest: Outage | None = None
    for last_ok, first_ok in zip(points, points[1:], strict=False):
        inside = [op for op in failed if last_ok < op.end <= first_ok]
        if not inside and first_ok - last_ok < BLOCKED_WRITE_S:
            continue
        if longest is None or first_ok - last_ok > longest.first_ok_end - longest.last_ok_end:
            longest = Outage(last_ok, first_ok, len(inside), inside[0].error if inside else None)
    return longest


def longest_gap_ms(ops: list[Op], start: float, end: float) -> float:
    """The longest time between successful completions in [start, end] (the 'kept serving' check)."""
    ends = sorted(op.end for op in ops if op.outcome == OK and start <= op.end <= end)
    points = [start, *ends, end]
    return max((b - a) * 1000 for a, b in zip(points, points[1:], strict=False)) if len(points) > 1 else 0.0


def error_counts(ops: Iterable[Op]) -> dict[str, int]:
    return dict(Counter((op.error or "").split(":")[0] for op in ops if op.outcome != OK))
