"""Lost-write accounting, Jepsen's way: every write of a history against its final read; the one definition of a
lost write for every suite (HA, cluster, cache, the compared clients).

A write is ok (acknowledged), fail (surely not applied) or unknown (may have been applied: a timeout,
or a connection dropped after the command was sent); a retried write is judged by all its attempts.
The input is a History (a live run's, or a saved one read back by History.from_dict), so a run and
`--recheck FILE.json` judge the same data. Values are unique per key (ContinuousWriter writes key(seq) = seq),
so "present" means that exact value.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from lib import events
from lib.checks.result import FAIL, OK, WARN, CheckResult
from lib.history import FAIL as OP_FAIL
from lib.history import OK as OP_OK
from lib.history import UNKNOWN, WRITE, WRITER, History, Op

LOST_SAMPLE = 20  # lost keys named in the metrics; all of them are counted


@dataclass
class Accounting:
    """The classes of every write; *_s are seconds from the fault (the history's zero)."""

    acked: int = 0
    acked_lost: int = 0
    unknown: int = 0
    unknown_applied: int = 0
    unknown_lost: int = 0
    failed: int = 0
    failed_present: int = 0
    lost_acked_window_s: list[float] | None = None  # [first, last] acknowledgement of a lost write
    cut_at_s: float = 0.0
    heal_at_s: float | None = None
    acked_after_heal: int = 0  # e.g. what a paused master accepted once resumed
    acked_lost_after_heal: int = 0
    wait_confirmed: int = 0  # acknowledged and confirmed by WAIT (HA writer)
    wait_confirmed_lost: int = 0
    lost_by_group: dict[str, int] = field(default_factory=dict)  # cluster: per shard
    lost_keys_sample: list[str] = field(default_factory=list)
    failed_present_keys_sample: list[str] = field(default_factory=list)
    lost_ops: list[Op] = field(default_factory=list, repr=False)  # every lost write, for the notes on when

    def merged(self, other: Accounting) -> Accounting:
        """Two writers' accountings as one (the HA client and the writer pinned to the old master)."""
        windows = [w for w in (self.lost_acked_window_s, other.lost_acked_window_s) if w]
        groups = dict(self.lost_by_group)
        for group, lost in other.lost_by_group.items():
            groups[group] = groups.get(group, 0) + lost
        counted = ("acked", "acked_lost", "unknown", "unknown_applied", "unknown_lost", "failed", "failed_present",
                   "acked_after_heal", "acked_lost_after_heal", "wait_confirmed", "wait_confirmed_lost")
        return Accounting(
            **{name: getattr(self, name) + getattr(other, name) for name in counted},
            lost_acked_window_s=[min(w[0] for w in windows), max(w[1] for w in windows)] if windows else None,
            cut_at_s=self.cut_at_s, heal_at_s=self.heal_at_s if self.heal_at_s is not None else other.heal_at_s,
            lost_by_group=groups, lost_keys_sample=(self.lost_keys_sample + other.lost_keys_sample)[:LOST_SAMPLE],
            failed_present_keys_sample=(self.failed_present_keys_sample
                                        + other.failed_present_keys_sample)[:LOST_SAMPLE],
            lost_ops=self.lost_ops + other.lost_ops)

    def metrics(self) -> dict[str, Any]:
        metrics: dict[str, Any] = {
            "acked": self.acked, "acked_lost": self.acked_lost, "unknown": self.unknown,
            "unknown_applied": self.unknown_applied, "unknown_lost": self.unknown_lost,
            "failed": self.failed, "failed_present": self.failed_present,
            "lost_acked_window_s": self.lost_acked_window_s,
            "cut_at_s": self.cut_at_s, "heal_at_s": self.heal_at_s,
            "wait_confirmed": self.wait_confirmed, "wait_confirmed_lost": self.wait_confirmed_lost,
            "lost_keys_sample": self.lost_keys_sample,
        }
        if self.heal_at_s is not None:
            metrics.update(acked_after_heal=self.acked_after_heal, acked_lost_after_heal=self.acked_lost_after_heal)
        if self.lost_by_group:
            metrics["acked_lost_by_group"] = self.lost_by_group
        if self.failed_present:
            metrics["failed_present_keys_sample"] = self.failed_present_keys_sample
        return metrics


def op_class(op: Op) -> str:
    """ok | fail | unknown, from every attempt when the op was retried, not only its last outcome."""
    if op.outcome == OP_OK:
        return OP_OK
    attempts = op.attempts or [op.outcome]
    return UNKNOWN if UNKNOWN in attempts or op.outcome == UNKNOWN else OP_FAIL


def writes(ops: list[Op]) -> list[Op]:
    """The operations that wrote a value (the accounting's input), whatever their process."""
    return [op for op in ops if op.f == WRITE and op.key and op.value is not None]


def account(ops: list[Op], final: dict[str, str | None], fault_at: float = 0.0,
            heal_at: float | None = None) -> Accounting:
    """Classify every write among ops by the final read; times in the result are seconds from fault_at.

    A write whose value is gone is not lost if a later write to the same key, begun after it was
    acknowledged, is what the final read holds: it was overwritten, as the client asked.
    """
    written = writes(ops)
    missing = {op.key for op in written} - final.keys()
    if missing:
        raise ValueError(f"the final read has no entry for {len(missing)} written key(s), e.g. {sorted(missing)[0]}")
    by_key: dict[str, list[Op]] = {}
    for op in written:
        by_key.setdefault(op.key, []).append(op)
    heal_at_s = None if heal_at is None else round(heal_at - fault_at, 4)
    acc = Accounting(cut_at_s=0.0, heal_at_s=heal_at_s)
    lost: list[Op] = []
    failed_present: list[Op] = []
    for op in written:
        present = final[op.key] == op.value
        kind = op_class(op)
        if kind == OP_OK:
            acc.acked += 1
            acc.wait_confirmed += bool(op.confirmed)
            after_heal = heal_at is not None and op.end >= heal_at
            acc.acked_after_heal += after_heal
            if not present and not _overwritten(op, by_key[op.key], final):
                lost.append(op)
                acc.wait_confirmed_lost += bool(op.confirmed)
                acc.acked_lost_after_heal += after_heal
        elif kind == UNKNOWN:
            acc.unknown += 1
            acc.unknown_applied += present
        else:
            acc.failed += 1
            if present:
                failed_present.append(op)
    acc.failed_present = len(failed_present)
    acc.failed_present_keys_sample = [op.key for op in failed_present[:LOST_SAMPLE]]
    acc.unknown_lost = acc.unknown - acc.unknown_applied
    acc.acked_lost, acc.lost_ops = len(lost), lost
    acc.lost_keys_sample = [op.key for op in lost[:LOST_SAMPLE]]
    if lost:
        acks = [op.end - fault_at for op in lost]
        acc.lost_acked_window_s = [round(min(acks), 3), round(max(acks), 3)]
    acc.lost_by_group = dict(Counter(op.group for op in lost if op.group))
    return acc


def _overwritten(op: Op, same_key: list[Op], final: dict[str, str | None]) -> bool:
    return any(other is not op and other.start >= op.end and final[op.key] == other.value for other in same_key)


def fault_window(history: History) -> tuple[float, float | None]:
    """(cut, heal): when the fault took effect and when the run healed it (monotonic times of the history)."""
    cut = history.first_event(events.FAULT_SEEN) or history.first_event(events.FAULT)
    cut_at = cut.at if cut is not None else 0.0
    heal = next((e.at for e in sorted(history.events, key=lambda e: e.at)
                 if e.name == events.HEALED and e.at >= cut_at), None)
    return cut_at, heal


def account_history(history: History, processes: tuple[str, ...] = (WRITER,)) -> Accounting:
    """account() over the writes of these processes, by the history's own final read and fault window.

    A history without a final read cannot be judged: KeyError names what is missing.
    """
    final = history.final_read
    if final is None:
        raise KeyError("final_read")
    cut, heal = fault_window(history)
    ops = [op for process in processes for op in history.snapshot(process)]
    return account(ops, final, cut, heal)


def max_lag_s(settings: dict[str, str]) -> float | None:
    """The min-replicas bound the run had: max-lag seconds when min-replicas-to-write was set above 0."""
    if int(settings.get("min-replicas-to-write", 0) or 0) <= 0:
        return None
    return float(settings.get("min-replicas-max-lag", 10))  # 10 s: the server's default


def bound_line(acc: Accounting, max_lag_s: float | None, system: str = "Sentinel") -> str:
    """The verdict's second line: is the loss within what min-replicas-max-lag documents?

    The Sentinel docs say min-replicas-to-write / min-replicas-max-lag limit the window of lost writes to
    max-lag seconds after the master is cut off; without them no bound is documented at all.
    """
    if max_lag_s is None:
        return f"no min-replicas bound configured: {system} documents no bound"
    bound = f"min-replicas-max-lag {_seconds(max_lag_s)} s"
    if acc.acked_lost == 0 or acc.lost_acked_window_s is None:
        return f"no acknowledged write lost ({bound}): within the documented bound"
    last = acc.lost_acked_window_s[1] - acc.cut_at_s
    writes = f"{acc.acked_lost:,} lost write{'s' if acc.acked_lost != 1 else ''}"
    if last <= 0:
        return f"all {writes} were acknowledged before the cut ({bound}): within the documented bound"
    if last <= max_lag_s:
        return (f"all {writes} were acknowledged within {_seconds(last)} s of the cut ({bound}): "
                "within the documented bound")
    return f"{writes} were acknowledged up to {_seconds(last)} s after the cut ({bound}): beyond the documented bound"


def _seconds(value: float) -> str:
    """1.6, 2, 2.04: as many decimals as it takes, up to two."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def judge(acc: Accounting, max_lag_s: float | None = None, system: str = "Sentinel") -> tuple[str, str]:
    """(status, detail): any acknowledged write lost is a FAIL; a write reported failed yet present, a WARN."""
    counts = (f"{acc.unknown:,} unknown ({acc.unknown_applied:,} applied, {acc.unknown_lost:,} not); "
              f"{acc.failed_present:,} of {acc.failed:,} failed writes present in the final state")
    if acc.acked_lost:
        first, last = acc.lost_acked_window_s or [0.0, 0.0]
        detail = (f"{acc.acked_lost:,} of {acc.acked:,} acknowledged writes lost, acknowledged {first:+.2f} s to "
                  f"{last:+.2f} s from the fault; {counts}")
        status = FAIL
    else:
        detail = f"all {acc.acked:,} acknowledged writes present in the final read; {counts}"
        status = WARN if acc.failed_present else OK
    if acc.failed_present:
        detail += " (the client was told they failed: a retry would write them twice)"
    if acc.acked_lost or max_lag_s is not None:
        detail += "\n" + bound_line(acc, max_lag_s, system)
    return status, detail


def consistency_result(acc: Accounting, max_lag_s: float | None = None, system: str = "Sentinel",
                       name: str = "consistency", **metrics: Any) -> CheckResult:
    """The consistency scenario from an accounting: the suites and --recheck build it the same way."""
    status, detail = judge(acc, max_lag_s, system)
    return CheckResult(name, status, detail, {**metrics, **acc.metrics(), "min_replicas_max_lag_s": max_lag_s})
