"""The result contract every suite shares: a check's verdict (OK, WARN, FAIL) with its detail and metrics,
a suite's report of them, its exit code and its JSON.

ERROR is not a verdict: the harness could not do what the check needs (lib.errors.HarnessError), and the
detail says what. It exits 3 unless a check failed (1), so CI can tell the harness's trouble from Valkey's.
Checks return CheckResult; checked turns a crashing check into a FAIL so one broken check never
ends the suite. Rendering lives in lib/report/report.py; this module has no presentation in it.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.errors import HarnessError, SetupError
from lib.waits import WaitTimeout

OK, WARN, FAIL, ERROR = "OK", "WARN", "FAIL", "ERROR"
EXIT_OK, EXIT_CHECK_FAILED, EXIT_SETUP_ERROR, EXIT_NOT_JUDGED = 0, 1, 2, 3


@dataclass
class CheckResult:
    """One check's verdict (or one compatibility scenario's). The JSON keeps the key "scenario" for its name: the
    saved format is a contract users' tooling reads."""

    name: str
    status: str
    detail: str
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.name, "status": self.status, "detail": self.detail, "metrics": self.metrics}


@dataclass
class SuiteReport:
    suite: str
    target: dict[str, Any]
    checks: list[CheckResult] = field(default_factory=list)  # saved as "scenarios" (the JSON contract)
    test: dict[str, Any] | None = None  # the test description (lib/description.py), as saved
    history: dict[str, Any] | None = None  # the run's one history (History.to_dict), times from the fault

    def add(self, result: CheckResult) -> CheckResult:
        self.checks.append(result)
        return result

    def exit_code(self) -> int:
        statuses = {s.status for s in self.checks}
        return EXIT_CHECK_FAILED if FAIL in statuses else EXIT_NOT_JUDGED if ERROR in statuses else EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"suite": self.suite, "target": self.target}
        if self.test is not None:
            body["test"] = self.test
        body["scenarios"] = [s.to_dict() for s in self.checks]
        if self.history is not None:
            body["history"] = self.history
        return body

    def write_json(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())


def checked(name: str, check: Callable[[], CheckResult]) -> CheckResult:
    """Run one check; an unexpected exception becomes a FAIL result instead of ending the suite.

    A wait that timed out inside the check (a migration that never converged) is that check's
    FAIL, with what was last seen; the remaining checks still run. Only a SetupError ends the suite.
    A HarnessError (the harness could not do what the check needs) is that check's ERROR, never its FAIL.
    """
    try:
        return check()
    except SetupError:
        raise
    except HarnessError as exc:
        return CheckResult(name, ERROR, _with_notes(str(exc), exc), {"error_type": "HarnessError"})
    except WaitTimeout as exc:
        return CheckResult(name, FAIL, _with_notes(str(exc), exc),
                              {"error_type": "WaitTimeout", "last_seen": exc.observed})
    except Exception as exc:  # noqa: BLE001 - a crashing check is a failed check, reported as such
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
        return CheckResult(name, FAIL, _with_notes(f"{type(exc).__name__}: {exc}{where}", exc),
                              {"error_type": type(exc).__name__})


def _with_notes(detail: str, exc: BaseException) -> str:
    """The detail plus the exception's notes (e.g. "and the slot was not put back: ...")."""
    return "; ".join([detail, *getattr(exc, "__notes__", [])])


def write_json(path: str | Path, body: Any) -> Path:
    """body as indented JSON at path (parents created); returns the path written."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(body, indent=2, default=str) + "\n")
    return out
