"""The one shape every failover suite has: parse, check the outputs, resolve and prepare the target (nothing
written yet), run the checks, report, exit code; and however it ends, undo the fault and delete the keys.

A suite (lib/suites/ha.py, cluster.py, cache.py) supplies a parser and a `prepare` that returns a SuiteRun:
the object that knows its target, its checks, what to undo after Ctrl-C and which keys to delete. The entry
point (app/ha_test.py ...) is three lines: it hands the suite and a rendering Output to run_cli.

Library code never prints: a suite shows tables and progress through the Output it is given, and the
entry point's Output (lib/report/report.ConsoleOutput) is the one that renders.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from typing import Any, Protocol

from lib.checks.recheck import recheck
from lib.checks.result import SuiteReport
from lib.suites.cli import check_outputs


class Output(Protocol):
    """Where a suite's tables, progress lines and warnings go; the entry point decides how they look."""

    def show(self, renderable: Any) -> None: ...  # a table, a timeline, a progress line

    def warn(self, line: str) -> None: ...  # one line on stderr: a cleanup that failed, a skipped plot

    def notify(self, notice: Any) -> None: ...  # a manual fault's WaitNotice (instruction, live view)

    def finish(self, report: SuiteReport, json_path: str | None) -> int: ...  # summary, JSON, exit code

    def run_undoing_interrupts(self, body: Callable[[], int], undo: Callable[[], list[str]]) -> int: ...

    def close(self) -> None: ...  # stop a live view left open


class SuiteRun(Protocol):
    """One prepared run of a suite: everything validated, nothing written yet."""

    def checks(self, out: Output) -> SuiteReport: ...  # runs every check in order, fault included

    def undo_interrupted(self) -> list[str]: ...  # after Ctrl-C / SIGTERM: a line per thing put back

    def cleanup(self) -> str | None: ...  # delete this run's keys; a problem is one line


class Suite(Protocol):
    name: str

    def build_parser(self) -> argparse.ArgumentParser: ...

    def prepare(self, args: argparse.Namespace, out: Output) -> contextlib.AbstractContextManager[SuiteRun]:
        """Resolve the target, connect, check reachability and ownership, build the fault: a SetupError here
        leaves the target exactly as it was. The context closes the clients."""
        ...


def run_cli(suite: Suite, argv: list[str] | None, out: Output) -> int:
    """The whole life of a suite run; the entry point wraps it in report.cli_main for exit codes 2 and 130."""
    args = suite.build_parser().parse_args(argv)
    check_outputs(args)  # before any server is touched: a run whose results are lost is wasted
    if getattr(args, "recheck", None):
        return recheck_saved(suite, args, out)
    with suite.prepare(args, out) as run:
        try:
            return out.run_undoing_interrupts(lambda: out.finish(run.checks(out), args.json), run.undo_interrupted)
        finally:
            out.close()
            if problem := run.cleanup():
                out.warn(problem)



def recheck_saved(suite: Suite, args: argparse.Namespace, out: Output) -> int:
    """--recheck FILE.json: the verdicts recomputed from the saved history and final read; no server touched."""
    report, differences = recheck(args.recheck, suite.name)
    for line in differences:
        out.warn(line)
    if not differences:
        out.show(f"recheck: all {len(report.checks)} verdicts and their metrics, recomputed from the saved "
                 "history, match the file")
    return out.finish(report, args.json)
