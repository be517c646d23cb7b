"""The acknowledged writes a cluster fault lost, counted from the final read the run recorded."""

from __future__ import annotations

from lib.checks.accounting import account_history, bound_line
from lib.checks.timeline import history_to_dict
from lib.runs.cluster_failover_run import ClusterFailoverRun


def final_reader(run: ClusterFailoverRun):  # noqa: ANN201 - MGET-like
    """The final read the run recorded: what the verdict and --recheck judge by (check unread() first)."""
    final = run.history.final_read or {}
    return lambda keys: [final.get(key) for key in keys]


def unread(run: ClusterFailoverRun) -> str | None:
    """Why no final read was recorded (the check's ERROR: the harness could not read), None when there is one."""
    if run.history.final_read is not None:
        return None
    return run.history.final_read_error or "no final read was recorded after the run: nothing to judge the writes by"


def accounting(run: ClusterFailoverRun, metrics: dict) -> str | None:
    """Jepsen's classes of every write (lib/checks/accounting.py) from the saved history and its final read, into
    metrics; the line saying whether the loss is within what min-replicas-max-lag documents (None: nothing to say)."""
    saved = metrics.get("history") or history_to_dict(run.history, run.fault_at)
    if saved.get("final_read") is None:
        return None
    acc = account_history(saved)
    lag = max_lag_s(run.settings)
    metrics.update({**acc.metrics(), "min_replicas_max_lag_s": lag})
    return bound_line(acc, lag, "Valkey Cluster") if acc.acked_lost or lag is not None else None


def max_lag_s(settings: dict[str, str]) -> float | None:
    """The min-replicas bound the run had: max-lag seconds when min-replicas-to-write was set above 0."""
    if int(settings.get("min-replicas-to-write", 0) or 0) <= 0:
        return None
    return float(settings.get("min-replicas-max-lag", 10))  # 10 s: the server's default
