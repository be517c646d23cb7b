"""A failover timeline as a terminal table (the data is lib/checks/timeline.py)."""

from __future__ import annotations

from rich.table import Table

from lib.checks.timeline import Timeline


def timeline_table(timeline: Timeline, title: str = "Failover timeline (seconds from the fault)") -> Table:
    """The compact terminal view: `+2.01 s  +sdown (x3)  master ...`."""
    table = Table(title=title)
    table.add_column("t", justify="right")
    table.add_column("event")
    table.add_column("detail", overflow="fold")
    for event in timeline.events:
        name = event.name + (f" (x{event.count})" if event.count > 1 else "")
        table.add_row(f"{event.offset_s:+.3f} s", name, event.detail)
    for window in timeline.fault_windows:
        if window.end_s is not None:  # a fault the run healed (pause/resume, cut/heal): how long it lasted
            table.add_row("", "[bold]fault window[/]", f"{window.duration_s:,.2f} s ({window.start_s:+.2f} s to "
                          f"{window.end_s:+.2f} s): {window.what}")
    if timeline.downtime_ms is not None:
        start, end = timeline.downtime
        table.add_row("", "[bold]downtime[/]", f"{timeline.downtime_ms:,.0f} ms ({start:+.2f} s to {end:+.2f} s)")
    return table
