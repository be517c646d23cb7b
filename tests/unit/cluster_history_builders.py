"""Histories of a cluster failover run, built by hand the way the run records them, for the pure checks.

lib/phases/cluster_failover.py, cluster_outcomes.py and cluster_watch.py write a run into its History: the layout
before the fault, the fault (event and the nemesis's inject), the shard it hit, the node promoted or flagged fail,
the events (flags, promotion, heal, demotion, recovery), where the pinned writer wrote, the settings, and the final
read. The checks judge ClusterFailoverView.from_history of that alone; RecordedRun writes the same records with
times given in seconds from the fault, so a test states a run's story and the check judges it as it would a real one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lib import events
from lib.history import HARNESS, INJECT, NEMESIS, OK, PINNED, WRITE, WRITER, History, Op
from lib.phases.cluster_record import (
    DOWN_NODE,
    GAVE_UP,
    LAYOUT,
    PINNED_GROUP,
    PINNED_TO,
    PRIMARY_KEPT_SLOTS,
    PROMOTED_NODE,
    SETTINGS,
    VICTIM,
    ClusterFailoverView,
    node_line,
)
from lib.topology.cluster_topology import Address, ClusterNode, Shard
from lib.util import format_endpoint

NS = "vhc:cluster:unit:"
FAULT_AT = 100.0


def writer_key(group: str, seq: int) -> str:
    """The key the writer of a shard wrote at seq (unique per write, as ContinuousWriter's keys are)."""
    return f"{NS}w:{group}:{seq}"


def pinned_key(seq: int) -> str:
    return f"{NS}pin:{seq}"


@dataclass
class RecordedRun:
    """One cluster failover run's history; every time is in seconds from the fault (FAULT_AT)."""

    shards: list[Shard]
    fault_at: float = FAULT_AT
    history: History = field(default_factory=History)

    def at(self, offset_s: float) -> float:
        return self.fault_at + offset_s

    # ---- the loops' operations ----
    def write(self, group: str, seq: int, start_s: float, end_s: float, outcome: str = OK,
              error: str | None = None) -> Op:
        """A write of a shard's writer (process WRITER, group: the shard's label), value str(seq)."""
        return self.history.record(Op(seq, writer_key(group, seq), self.at(start_s), self.at(end_s), outcome, error,
                                      group=group, value=str(seq), process=WRITER, f=WRITE))

    def pinned_write(self, seq: int, start_s: float, end_s: float, outcome: str = OK, error: str | None = None) -> Op:
        """A write of the plain client pinned to the old primary (process PINNED, group PINNED_GROUP)."""
        return self.history.record(Op(seq, pinned_key(seq), self.at(start_s), self.at(end_s), outcome, error,
                                      group=PINNED_GROUP, value=str(seq), process=PINNED, f=WRITE))

    def steady(self, labels: Iterable[str], until_s: float = 4.0, gap_s: float = 0.2, from_s: float = -0.5) -> None:
        """Every gap_s an acknowledged write of 10 ms to each shard in labels, from from_s until until_s."""
        for label in labels:
            t, seq = from_s, 0
            while t < until_s:
                self.write(label, seq, t, t + 0.01)
                t, seq = t + gap_s, seq + 1

    # ---- what the run learned ----
    def failover(self, facts: dict[str, Any], *, victim: Shard, promoted: ClusterNode | None = None,
                 promoted_s: float | None = None, down: ClusterNode | None = None, down_seen_s: float | None = None,
                 healed_s: float | None = None, demoted_s: float | None = None, recovered_s: float | None = None,
                 pinned: Address | None = None, settings: dict[str, str] | None = None,
                 primary_kept_slots: bool | None = None, gave_up: str | None = None) -> None:
        """The records of measure_cluster_failover and its wait (after_promotion / after_replica_loss /
        after_shard_loss): the layout and settings before the fault, the fault, the shard it hit, and the events."""
        before = self.at(-1.0)
        self._observe(LAYOUT, "\n".join(node_line(n) for s in self.shards for n in (s.primary, *s.replicas)), before)
        self._observe(SETTINGS, dict(settings or {}), before)
        if pinned is not None:
            self._observe(PINNED_TO, format_endpoint(*pinned), before)
        self.history.event(events.FAULT, facts["description"], at=self.fault_at)
        self.history.observe(NEMESIS, INJECT, {"description": facts["description"], "stops": None}, at=self.fault_at)
        self._observe(VICTIM, victim.label, self.fault_at)
        timed = [(events.NODE_FAIL, down_seen_s), (events.PROMOTED, promoted_s), (events.HEALED, healed_s),
                 (events.DEMOTED, demoted_s), (events.RECOVERED, recovered_s)]
        for name, offset in timed:
            if offset is not None:
                self.history.event(name, f"{name} (built by hand)", at=self.at(offset))
        end = self.at(max((o for _, o in timed if o is not None), default=0.0))
        if gave_up is not None:
            self.history.observe(HARNESS, GAVE_UP, at=end, error=gave_up)
        if primary_kept_slots is not None:
            self._observe(PRIMARY_KEPT_SLOTS, primary_kept_slots, end)
        for f, node in ((PROMOTED_NODE, promoted), (DOWN_NODE, down)):
            if node is not None:
                self._observe(f, node_line(node), end)

    def final_read(self, lose: Iterable[str] = (), at_s: float | None = None) -> dict[str, str | None]:
        """The final read as lib/phases/final_read.read_back records it: every written key, holding the value its
        write acknowledged, except the keys in lose (and the writes not acknowledged, which never landed)."""
        lost = set(lose)
        writes = [op for op in self.history.snapshot(None, WRITE) if op.key and op.value is not None]
        unknown = lost - {op.key for op in writes}
        assert not unknown, f"no write wrote {sorted(unknown)}"
        values = {op.key: op.value if op.outcome == OK and op.key not in lost else None for op in writes}
        last = max((op.end for op in writes), default=self.fault_at)
        self.history.record_final_read(values, at=self.at(at_s) if at_s is not None else last + 0.1)
        return values

    def run(self, facts: dict[str, Any]) -> ClusterFailoverView:
        """The view every cluster verdict judges, as the suite and --recheck build it."""
        return ClusterFailoverView.from_history(self.history, facts)

    def saved(self, facts: dict[str, Any]) -> ClusterFailoverView:
        """The same view from the history as the JSON saves it (History.to_dict / from_dict: --recheck's input)."""
        return ClusterFailoverView.from_history(History.from_dict(self.history.to_dict(self.fault_at)), facts)

    def _observe(self, f: str, value: Any, at: float) -> None:
        self.history.observe(HARNESS, f, value, at=at)

