"""The acknowledged writes a cluster fault lost, counted from the final read the run recorded (the one lost-write
definition, lib/checks/accounting.py, over the writers' and the pinned writer's operations)."""

from __future__ import annotations

from lib.checks.accounting import Accounting, account_history, bound_line, max_lag_s
from lib.history import PINNED, WRITER
from lib.phases.cluster_record import ClusterFailoverView


def unread(run: ClusterFailoverView) -> str | None:
    """Why no final read was recorded (the check's ERROR: the harness could not read), None when there is one."""
    if run.history.final_read is not None:
        return None
    return run.history.final_read_error or "no final read was recorded after the run: nothing to judge the writes by"


def loss(run: ClusterFailoverView) -> Accounting:
    """Jepsen's classes of every write of the harness (its shard writers and the writer pinned to the old primary)."""
    return account_history(run.history, (WRITER, PINNED))


def accounting(run: ClusterFailoverView, acc: Accounting, metrics: dict) -> str | None:
    """The accounting into metrics; the line saying whether the loss is within what min-replicas-max-lag documents
    (None: nothing to say)."""
    lag = max_lag_s(run.settings)
    metrics.update({**acc.metrics(), "min_replicas_max_lag_s": lag})
    return bound_line(acc, lag, "Valkey Cluster") if acc.acked_lost or lag is not None else None
