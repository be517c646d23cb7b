"""How the compatibility suite shows and saves its results: tables per target, side by side, the diff."""

from __future__ import annotations

import json
from typing import Any

from rich.markup import escape
from rich.table import Table

from lib.checks.compat_diff import MISSING
from lib.checks.result import CheckResult
from lib.report.report import format_value, status_text

MAX_DIFF_ROWS_PER_SCENARIO = 25
MAX_CELL_CHARS = 90


def describe_server(identity: dict[str, Any]) -> str:
    """'valkey 9.0.0 (redis_version 7.2.4)' or 'redis 7.0.15': what was really tested."""
    name = identity.get("server_name") or "redis"
    version = identity.get("valkey_version") or identity.get("redis_version") or "?"
    compat = f" (redis_version {identity['redis_version']})" if identity.get("valkey_version") else ""
    return f"{name} {version}{compat}"


def target_table(name: str, info: dict[str, Any], results: list[CheckResult],
                 elapsed: dict[str, float]) -> Table:
    """One target's scenarios: status, detail and time."""
    table = Table(title=f"{name} — {describe_server(info['server'])} at {info['address']}")
    table.add_column("scenario", style="bold")
    table.add_column("status")
    table.add_column("ms", justify="right")
    table.add_column("detail", overflow="fold")
    for item in results:
        table.add_row(item.name, status_text(item.status), f"{elapsed.get(item.name, 0):,.0f}",
                      escape(str(item.detail)))
    return table


def versions_table(targets: dict[str, dict[str, Any]]) -> Table:
    """One row per target: address, INFO server identity, and whether the harness started it."""
    table = Table(title="targets (INFO server, as reported by each server)")
    for column in ("target", "address", "server", "redis_version", "valkey_version", "server_name", "mode",
                   "mem_allocator", "harness-started"):
        table.add_column(column)
    for name, info in targets.items():
        ident = info["server"]
        table.add_row(name, info["address"], describe_server(ident), str(ident.get("redis_version") or "—"),
                      str(ident.get("valkey_version") or "—"), str(ident.get("server_name") or "—"),
                      str(ident.get("mode") or "—"), str(ident.get("mem_allocator") or "—"),
                      "yes" if info["harness_started"] else "no")
    return table


def comparison_table(diff: dict[str, Any], elapsed: dict[str, dict[str, float]]) -> Table:
    """Scenarios down, targets across: status and time, with the number of differing metrics."""
    table = Table(title="side by side (rows in yellow differ between targets)")
    table.add_column("scenario", style="bold")
    for target in diff["targets"]:
        table.add_column(target)
    table.add_column("differences")
    for entry in diff["scenarios"]:
        cells = [f"{status_text(entry['statuses'][t])} {elapsed.get(t, {}).get(entry['scenario'], 0):,.0f} ms"
                 if entry["statuses"][t] != MISSING else "—" for t in diff["targets"]]
        count = len(entry["differences"])
        table.add_row(entry["scenario"], *cells, str(count) if count else "[green]none[/]",
                      style="yellow" if count else None)
    return table


def diff_table(diff: dict[str, Any]) -> Table:
    """Every difference, one row each (capped per scenario; the JSON has them all)."""
    table = Table(title="differences (values per target; JSON has the full list)")
    table.add_column("scenario", style="bold")
    table.add_column("metric", style="cyan", overflow="fold")
    table.add_column("kind")
    for target in diff["targets"]:
        table.add_column(target, overflow="fold")
    for entry in diff["scenarios"]:
        rows = entry["differences"]
        for item in rows[:MAX_DIFF_ROWS_PER_SCENARIO]:
            style = "bold red" if item["kind"] == "status" else None
            table.add_row(entry["scenario"], item["metric"], item["kind"],
                          *[_cell(item["values"].get(t, MISSING)) for t in diff["targets"]], style=style)
        if len(rows) > MAX_DIFF_ROWS_PER_SCENARIO:
            table.add_row(entry["scenario"], f"… {len(rows) - MAX_DIFF_ROWS_PER_SCENARIO} more", "",
                          *["" for _ in diff["targets"]])
    return table


def _cell(value: Any) -> str:
    if value == MISSING:
        return "[dim]absent[/]"
    if isinstance(value, list) and not value:
        return "[dim](none)[/]"
    text = format_value(value) if not isinstance(value, dict) else json.dumps(value, default=str)
    return escape(text if len(text) <= MAX_CELL_CHARS else text[:MAX_CELL_CHARS - 1] + "…")
