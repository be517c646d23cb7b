"""The output contract every suite shares: scenario results, rich tables, JSON and exit codes."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from lib import interrupts
from lib.errors import SetupError  # noqa: F401 - re-exported: callers import it from here too
from lib.waits import WaitTimeout

OK, WARN, FAIL = "OK", "WARN", "FAIL"
EXIT_OK, EXIT_CHECK_FAILED, EXIT_SETUP_ERROR = 0, 1, 2

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

_STATUS_STYLE = {OK: "green", WARN: "yellow", FAIL: "bold red"}


@dataclass
class ScenarioResult:
    scenario: str
    status: str
    detail: str
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SuiteReport:
    suite: str
    target: dict[str, Any]
    scenarios: list[ScenarioResult] = field(default_factory=list)

    def add(self, result: ScenarioResult) -> ScenarioResult:
        self.scenarios.append(result)
        return result

    def exit_code(self) -> int:
        return EXIT_CHECK_FAILED if any(s.status == FAIL for s in self.scenarios) else EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return {"suite": self.suite, "target": self.target,
                "scenarios": [s.to_dict() for s in self.scenarios]}

    def write_json(self, path: str | Path) -> Path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        return out


def run_scenario(name: str, check: Callable[[], ScenarioResult]) -> ScenarioResult:
    """Run one check; an unexpected exception becomes a FAIL result instead of ending the suite.

    A wait that timed out inside the check (a migration that never converged) is that check's
    FAIL, with what was last seen; the remaining checks still run. Only a SetupError ends the suite.
    """
    try:
        return check()
    except SetupError:
        raise
    except WaitTimeout as exc:
        return ScenarioResult(name, FAIL, _with_notes(str(exc), exc),
                              {"error_type": "WaitTimeout", "last_seen": exc.observed})
    except Exception as exc:  # noqa: BLE001 - a crashing check is a failed check, reported as such
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
        return ScenarioResult(name, FAIL, _with_notes(f"{type(exc).__name__}: {exc}{where}", exc),
                              {"error_type": type(exc).__name__})


def _with_notes(detail: str, exc: BaseException) -> str:
    """The detail plus the exception's notes (e.g. "and the slot was not put back: ...")."""
    return "; ".join([detail, *getattr(exc, "__notes__", [])])


def status_text(status: str) -> str:
    return f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]"


def summary_table(report: SuiteReport, title: str | None = None) -> Table:
    table = Table(title=title or f"{report.suite} — results", show_lines=False)
    table.add_column("scenario", style="bold")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    for result in report.scenarios:
        table.add_row(result.scenario, status_text(result.status), result.detail)
    return table


def key_value_table(title: str, rows: dict[str, Any] | list[tuple[str, Any]]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("metric", style="cyan")
    table.add_column("value", overflow="fold")
    for key, value in (rows.items() if isinstance(rows, dict) else rows):
        table.add_row(str(key), format_value(value))
    return table


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, list | tuple):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def finish(report: SuiteReport, json_path: str | None) -> int:
    """Print the summary, write JSON if asked, and return the suite's exit code."""
    console.print(summary_table(report))
    if json_path:
        written = report.write_json(json_path)
        console.print(f"JSON written to {written}")
    code = report.exit_code()
    console.print(f"exit code {code} ({'all checks passed' if code == 0 else 'a check failed'})")
    return code


def cli_main(main: Callable[[], int]) -> None:
    """Run a script's main(): setup errors become one line and exit 2, Ctrl-C exits 130.

    A WaitTimeout that no check turned into a FAIL (a wait outside any check, e.g. writes that
    never started before a fault) ends the run the same way: one line that says what was seen.
    """
    try:
        code = main()
    except (SetupError, WaitTimeout) as exc:
        err_console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        code = EXIT_SETUP_ERROR
    except KeyboardInterrupt:
        err_console.print("interrupted")
        code = 130
    sys.exit(code)


class ManualPrompt:
    """Shows what a fault done by hand asks for (lib.faults.fault.WaitNotice): the instruction, a live view
    until the kill is seen, then the request to start the node again. Entry points own it, so
    library code never prints."""

    def __init__(self) -> None:
        self._live: Live | None = None

    def __call__(self, notice) -> None:  # noqa: ANN001 - lib.faults.fault.WaitNotice (fault imports report's errors)
        if notice.phase == "kill":
            if self._live is None:
                console.print(notice.message)
                self._live = Live(notice.view, console=console, refresh_per_second=4, transient=True)
                self._live.start()
            else:
                self._live.update(notice.view)
        elif notice.phase == "killed":
            self.close()
        else:
            console.print(notice.message)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def run_undoing_interrupts(body: Callable[[], int], undo: Callable[[], list[str]], prompt: ManualPrompt) -> int:
    """body(); on Ctrl-C or SIGTERM, say so, print what undo() put back (a line each), then re-raise.

    Every failover suite wraps its run in this, so a fault never outlives the run that caused it. An
    interrupt swallowed somewhere inside body (lib/interrupts.py says where) is raised at the end.
    """
    with interrupts.interrupts_raise():
        try:
            code = body()
            interrupts.raise_if_pending()
            return code
        except KeyboardInterrupt:
            interrupts.handled()
            prompt.close()
            console.print("interrupted: putting back what this run changed")
            for note in undo():
                console.print(note, soft_wrap=True)
            raise
