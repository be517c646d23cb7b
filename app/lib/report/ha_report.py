"""The HA suite's pictures: the failover timeline of one run, and the live view while a person kills the master."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.table import Table

from lib.ha_client import HAClient
from lib.history import OK as OP_OK
from lib.history import History


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
