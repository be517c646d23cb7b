"""What one Sentinel failover run is asked to do around its fault (RunPlan) and what it recorded (FailoverRun).

The checks read these records afterwards (lib/checks/ha_*.py); nothing here talks to a server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lib.ha_client import Address
from lib.history import OK, History, Op


@dataclass
class FailoverRun:
    fault: str
    old_master: Address  # as announced by the sentinels
    history: History = field(default_factory=History)  # writer ops + sentinel events
    probe: History = field(default_factory=History)
    plain: History | None = None  # a redis-py Sentinel client with default settings (None: not run)
    fault_at: float = 0.0
    recovered_at: float | None = None
    new_master: Address | None = None
    timeout_reason: str | None = None
    views_after: dict[str, str] = field(default_factory=dict)
    expected_failover: bool = True  # False: the master must stay where it is (replica kill)
    watch: Watch | None = None  # the window watched for a failover that must not happen
    healed_at: float | None = None  # the run healed the fault itself (a pause resumed, sentinels back)
    pinned: History | None = None  # a second writer's, pinned to the old master's address throughout
    old_master_demoted_at: float | None = None  # when the pinned-to old master reported role:slave
    victim: Address | None = None  # the node the fault stopped when it is not the master (replica kill)
    settings: dict[str, str] = field(default_factory=dict)  # CONFIG SET on the servers for the run
    extra: dict[str, Any] = field(default_factory=dict)  # what the fault adds to the metrics
    loss_explained: str | None = None  # the fault's own words for why it can lose acknowledged writes
    compared: Any = None  # the compared client libraries (lib/runs/client_comparison.ClientComparison), --client

    def offset(self, at: float) -> float:
        """Seconds from the fault (negative: before it)."""
        return at - self.fault_at


@dataclass
class Watch:
    """What a window watched for a failover that must not happen (quorum loss, replica kill) saw."""

    seconds: float
    why: str  # why no failover may happen: "quorum unreachable"
    ended_at: float
    switch_at: float | None  # +switch-master inside the window: a failover did happen
    events: dict[str, int]  # sentinel events seen in the window, by name
    views: dict[str, str]  # each sentinel's master at its end


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
