"""The compared clients' rows (lib/checks/client_rows.py) as one rich table, words where numbers cannot be."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

COLUMNS = ("client", "down ms", "after promotion ms", "healthy shards gap ms", "healthy rate kept",
           "errors by type", "acked/lost/unknown", "conns", "refreshes")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(errors.items(), key=lambda e: -e[1])) or "none"


def client_table(metrics: dict[str, Any], title: str) -> Group:
    """One row per library; a row that could not be measured says why (below the table) instead of blanks."""
    table = Table(title=title, title_justify="left")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in ("client", "errors by type") else "right",
                         overflow="fold")
    lines: list[Text] = []
    for row in metrics["clients"]:
        name = f"{row['client']} {row.get('version', '')}".strip()
        if row.get("why"):
            lines.append(Text(f"{row['client']}: {row['why']}", style="yellow"))
        lines += [Text(f"{row['client']}: {note}", style="dim") for note in row.get("notes", [])]
        if "downtime_ms_by_shard" not in row:
            table.add_row(name, *["-"] * (len(COLUMNS) - 2), "see below")
            continue
        stall, kept = row.get("healthy_stall_ms"), row.get("healthy_rate_kept_pct")
        acc = row.get("accounting")
        seen, refreshes = row.get("connections_seen"), row.get("refreshes")
        table.add_row(name, _ms(row.get("downtime_ms")), _ms(row.get("after_promotion_ms")),
                      "no other shard" if stall is None else _ms(stall),
                      "-" if kept is None else f"{kept:.0f}%", _errors(row.get("errors_by_type", {})),
                      "-" if not acc else f"{acc['acked']:,}/{acc['acked_lost']:,}/{acc['unknown']:,}",
                      "-" if seen is None else f"≥{seen}", "not observable" if refreshes is None else str(refreshes))
    servers = metrics.get("servers") or {}
    commands = servers.get("topology_commands") or {}
    queried = ", ".join(f"{name.upper()} {calls:,}" for name, calls in sorted(commands.items()))
    line = (f"servers, all clients together (harness included): {queried or 'no topology query counted'}; "
            f"{servers.get('connections_received', 0):,} connections received")
    if servers.get("nodes_missing"):
        line += f" (not counted: {', '.join(servers['nodes_missing'])}, down at the start or end)"
    if note := metrics.get("servers_note"):
        line += f". {note}"
    return Group(table, *lines, Text(line, style="dim"))
