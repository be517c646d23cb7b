"""How results look: rich tables, the summary, the exit line, the manual-fault prompt; the console lives here.

The contract itself (CheckResult, SuiteReport, OK/WARN/FAIL) is lib/checks/result.py.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from lib import interrupts
from lib.checks.result import (
    ERROR,
    EXIT_CHECK_FAILED,
    EXIT_NOT_JUDGED,
    EXIT_OK,
    EXIT_SETUP_ERROR,
    FAIL,
    OK,
    WARN,
    SuiteReport,
)
from lib.errors import SetupError
from lib.waits import WaitTimeout

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

_STATUS_STYLE = {OK: "green", WARN: "yellow", FAIL: "bold red", ERROR: "bold magenta"}
_EXIT_MEANING = {EXIT_OK: "all checks passed", EXIT_CHECK_FAILED: "a check failed",
                 EXIT_NOT_JUDGED: "the harness could not judge a check: see ERROR"}


def status_text(status: str) -> str:
    return f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]"


def summary_table(report: SuiteReport, title: str | None = None) -> Table:
    table = Table(title=title or f"{report.suite} — results", show_lines=False)
    table.add_column("check", style="bold")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    for result in report.checks:
        table.add_row(result.name, status_text(result.status), result.detail)
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
    console.print(f"exit code {code} ({_EXIT_MEANING[code]})")
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


class ConsoleOutput:
    """The entry points' Output (lib/suites/skeleton.py): tables and progress on stdout, warnings on stderr,
    a manual fault's prompt as a live view."""

    def __init__(self) -> None:
        self.prompt = ManualPrompt()

    def show(self, renderable: Any) -> None:
        console.print(renderable, soft_wrap=isinstance(renderable, str))

    def warn(self, line: str) -> None:
        err_console.print(f"[yellow]{line}[/]", soft_wrap=True)

    def notify(self, notice) -> None:  # noqa: ANN001 - lib.faults.fault.WaitNotice
        self.prompt(notice)

    def finish(self, report: SuiteReport, json_path: str | None) -> int:
        return finish(report, json_path)

    def run_undoing_interrupts(self, body: Callable[[], int], undo: Callable[[], list[str]]) -> int:
        return run_undoing_interrupts(body, undo, self.prompt)

    def close(self) -> None:
        self.prompt.close()
