"""The HA suite's pictures: the failover timeline of one run, and the live view while a person kills the master."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.table import Table

from lib import events
from lib.ha_client import HAClient
from lib.report.timeline import Timeline, build_timeline, client_rows
from lib.runs.ha_failover import FailoverRun
from lib.workload.workload import OK as OP_OK
from lib.workload.workload import History


def failover_timeline(run: FailoverRun) -> Timeline:
    """The writer's history and the sentinels' events, plus when the probes recovered, as one timeline."""
    extra = [row for row in client_rows(run.probe.snapshot(), run.fault_at, "5 ms probe")
             if row.name.endswith(events.RECOVERED)]
    if run.plain is not None:
        extra += [row for row in client_rows(run.plain.snapshot(), run.fault_at, "plain redis-py")
                  if row.name.endswith(events.RECOVERED)]
    return build_timeline(run.history, run.fault_at, who="client", extra_events=extra)


def manual_kill_view(ha: HAClient, history: History) -> Callable[[float], Table]:
    """The live view shown while waiting for a person to kill the master: writes, errors, who is master."""
    def render(remaining: float) -> Table:
        table = Table(title=f"waiting for the kill ({remaining:,.0f}s left)")
        for column in ("writes/s", "errors (last s)", "master (sentinels say)"):
            table.add_column(column)
        ops = history.snapshot()
        now = time.monotonic()
        recent = [op for op in ops if op.end >= now - 1.0]
        views = set(ha.sentinel_views().values())
        table.add_row(str(sum(1 for op in recent if op.outcome == OP_OK)),
                      str(sum(1 for op in recent if op.outcome != OP_OK)), ", ".join(sorted(views)))
        return table
    return render
