"""What one Sentinel failover run is asked to do around its fault (RunPlan), and what it recorded, read back from
the history alone (FailoverView.from_history): the checks judge this view, so a saved run is judged the same way.

The run writes everything it learns into the history: the sentinels' events, its own milestones (recovered, the
watch's end, healed, the old master demoted) and what it observed (the target, what the sentinels named at the
end, what the fault saw itself). Nothing here talks to a server.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lib import events
from lib.faults.fault import EVIDENCE
from lib.history import HARNESS, NEMESIS, OK, PINNED, PLAIN, PROBE, History, Op
from lib.util import parse_endpoint

Address = tuple[str, int]

# What the run observed, as operations of the harness process (their values are what was seen).
TARGET = "target"  # {"master": announced, "reachable": ..., "server_version": ...}
SENTINELS_AFTER = "sentinels after"  # {"views": {sentinel: master}, "master": the one they agree on or None}
WATCH = "watch"  # {"seconds": ..., "why": ..., "views": {...}}
GAVE_UP = "gave up"  # a wait that timed out: its error is the reason the run stopped waiting
FINAL_READ_ON = "final read on"  # the master the final read asked


@dataclass
class FailoverView:
    """The view of one failover the checks judge; every field comes from the history (from_history)."""

    fault: str
    old_master: Address  # as announced by the sentinels
    history: History = field(default_factory=History)  # every process's ops and every event
    fault_at: float = 0.0
    recovered_at: float | None = None
    new_master: Address | None = None
    timeout_reason: str | None = None
    views_after: dict[str, str] = field(default_factory=dict)
    expected_failover: bool = True  # False: the master must stay where it is (replica kill)
    watch: Watch | None = None  # the window watched for a failover that must not happen
    healed_at: float | None = None  # the run healed the fault itself (a pause resumed, sentinels back)
    old_master_demoted_at: float | None = None  # when the pinned-to old master reported role:slave
    victim: Address | None = None  # the node the fault stopped when it is not the master (replica kill)
    settings: dict[str, str] = field(default_factory=dict)  # CONFIG SET on the servers for the run
    extra: dict[str, Any] = field(default_factory=dict)  # what the fault adds to the metrics
    loss_explained: str | None = None  # the fault's own words for why it can lose acknowledged writes

    def offset(self, at: float) -> float:
        """Seconds from the fault (negative: before it)."""
        return at - self.fault_at

    @property
    def probe(self) -> History:
        return _only(self.history, PROBE)

    @property
    def plain(self) -> History | None:
        return _only(self.history, PLAIN) if self.history.snapshot(PLAIN) else None

    @property
    def pinned(self) -> History | None:
        """The writer kept on the old master: its ops, and the final read of its keys."""
        if not self.history.snapshot(PINNED):
            return None
        pinned = _only(self.history, PINNED)
        if (final := self.history.final_read) is not None:
            pinned.record_final_read({op.key: final.get(op.key) for op in pinned.snapshot()})
        return pinned

    @classmethod
    def from_history(cls, history: History, facts: dict[str, Any] | None, settings: dict[str, str] | None = None
                     ) -> FailoverView:
        """The view of a recorded run: facts are what the fault said of itself (the test description's)."""
        facts = facts or {}
        target = _value(history, TARGET) or {}
        inject = history.observed(NEMESIS, "inject")
        seen = history.first_event(events.FAULT_SEEN) or history.first_event(events.FAULT)
        fault_at = seen.at if seen is not None else 0.0
        after = _value(history, SENTINELS_AFTER) or {}
        gave_up = history.observed(HARNESS, GAVE_UP)
        recovered = history.first_event(events.RECOVERED)
        healed = next((e for e in history.events if e.name == events.HEALED and e.at >= fault_at), None)
        demoted = history.first_event(events.DEMOTED)
        stops = (inject.value or {}).get("stops") if inject is not None else None
        evidence = dict(_nemesis(history, EVIDENCE) or {})
        loss_explained = evidence.pop("loss_explained", None)
        extra = dict(evidence)
        if (on := _value(history, FINAL_READ_ON)) is not None:
            extra["final_read_on"] = on
        return cls(fault=(inject.value or {}).get("description", "") if inject is not None else "",
                   old_master=parse_endpoint(target["master"]) if target.get("master") else ("", 0),
                   history=history, fault_at=fault_at,
                   recovered_at=recovered.at if recovered is not None else None,
                   new_master=parse_endpoint(after["master"]) if after.get("master") else None,
                   timeout_reason=gave_up.error if gave_up is not None else None,
                   views_after=dict(after.get("views", {})),
                   expected_failover=facts.get("expects") != "no failover",
                   watch=Watch.from_history(history, fault_at),
                   healed_at=healed.at if healed is not None else None,
                   old_master_demoted_at=demoted.at if demoted is not None else None,
                   victim=parse_endpoint(stops) if stops else None, settings=dict(settings or {}), extra=extra,
                   loss_explained=loss_explained)


@dataclass
class Watch:
    """What a window watched for a failover that must not happen (quorum loss, replica kill) saw."""

    seconds: float
    why: str  # why no failover may happen: "quorum unreachable"
    ended_at: float
    switch_at: float | None  # +switch-master inside the window: a failover did happen
    events: dict[str, int]  # sentinel events seen in the window, by name
    views: dict[str, str]  # each sentinel's master at its end

    @classmethod
    def from_history(cls, history: History, fault_at: float) -> Watch | None:
        ended = history.first_event(events.WATCH_ENDED)
        seen = history.observed(HARNESS, WATCH)
        if ended is None or seen is None:
            return None
        switch = next((e for e in history.events if e.name == events.SWITCH_MASTER and fault_at <= e.at <= ended.at),
                      None)
        counts = Counter(e.name for e in history.events if fault_at <= e.at <= ended.at and e is not ended)
        return cls(seen.value["seconds"], seen.value["why"], ended.at, switch.at if switch else None, dict(counts),
                   dict(seen.value.get("views", {})))


@dataclass(frozen=True)
class RunPlan:
    """What the run expects of its fault and does around it; the defaults are a kill's: wait for a failover."""

    expect_failover: bool = True  # False (replica kill): the master keeps serving, no new one is waited for
    watch_s: float = 0.0  # > 0: first watch this long for a failover that must not happen
    why_no_failover: str = ""  # what the watch expects, in words: "quorum unreachable"
    heal_after_watch: Callable[[], str] | None = None  # quorum loss: start the sentinels again, say how it went
    pin_old_master: Address | None = None  # reachable address: a second writer stays on the old master
    victim: Address | None = None  # announced address of the node stopped, when it is not the master


def acked_after(ops: list[Op], at: float) -> list[Op]:
    """The writes acknowledged after `at` (an op blocked across it counts: its reply came after)."""
    return [op for op in ops if op.outcome == OK and op.end >= at]


def _nemesis(history: History, f: str) -> Any:
    op = history.observed(NEMESIS, f)
    return op.value if op is not None else None


def _value(history: History, f: str) -> Any:
    op = history.observed(HARNESS, f)
    return op.value if op is not None and op.outcome == OK else None


def _only(history: History, process: str) -> History:
    """One process's ops as a history of their own, as the writer's (the default process) for the checks that
    take one writer's history (outage_around, the accounting)."""
    view = History()
    for op in history.snapshot(process):
        view.record(Op(op.seq, op.key, op.start, op.end, op.outcome, op.error, op.confirmed, op.group, op.value,
                       op.attempts))
    return view
