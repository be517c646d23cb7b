"""`--recheck FILE.json`: every check of a saved run judged again, from the file's test description and history alone.

Trusts nothing the run concluded: the suite's own judge (the same function the run used on the same saved history)
recomputes every verdict, and each place it differs from what the file holds is one line. No server is touched.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from lib.checks.result import CheckResult, SuiteReport
from lib.description import TestDescription
from lib.errors import SetupError
from lib.history import History

JUDGES = {"ha": "lib.checks.ha_checks", "cluster": "lib.checks.cluster_checks", "cache": "lib.checks.cache_checks"}


def judge(suite: str, test: TestDescription, history: History) -> list[CheckResult]:
    """Every check of the suite over the description and the history (the module's judge)."""
    return importlib.import_module(JUDGES[suite]).judge(test, history)


def recheck(path: str | Path, expect_suite: str | None = None) -> tuple[SuiteReport, list[str]]:
    """The saved report with every verdict recomputed, and a line for each place they differ from the saved ones.

    expect_suite: the suite asking (a cluster file handed to ha_test.py is a SetupError naming the right one).
    """
    body = _load(Path(path))
    suite = body["suite"]
    if expect_suite is not None and suite != expect_suite:
        raise SetupError(f"--recheck {path}: the file holds a {suite} suite run; recheck it with its own script: "
                         f"python app/{suite}_test.py --recheck {path}")
    if not isinstance(body.get("test"), dict) or not isinstance(body.get("history"), dict):
        raise SetupError(f"--recheck {path}: no test description and history in it (saved by an older harness): run "
                         "the suite again with --json")
    try:
        test, history = TestDescription.from_dict(body["test"]), History.from_dict(body["history"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SetupError(f"--recheck {path}: its test description or history cannot be read: {exc}") from None
    results = judge(suite, test, history)
    report = SuiteReport(suite, body.get("target") or {}, results, body["test"], body["history"])
    saved = {s["scenario"]: s for s in body["scenarios"]}
    return report, [line for result in results for line in differences(saved.get(result.name), result)]


def _load(path: Path) -> dict[str, Any]:
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        raise SetupError(f"--recheck {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SetupError(f"--recheck {path}: not readable as JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(body, dict) or body.get("suite") not in JUDGES or not isinstance(body.get("scenarios"), list):
        raise SetupError(f"--recheck {path}: not a suite's --json report (no suite and scenarios in it)")
    return body


def differences(saved: dict[str, Any] | None, new: CheckResult) -> list[str]:
    """One line per place the recomputed verdict differs from the saved one (none: they agree)."""
    name = new.name
    if saved is None:
        return [f"{name}: not in the saved file, recomputed {new.status}"]
    lines = []
    if saved["status"] != new.status:
        lines.append(f"{name}: saved {saved['status']}, recomputed {new.status} from the saved history: "
                     f"{new.detail.splitlines()[0]}")
    recomputed = json.loads(json.dumps(new.metrics, default=str))  # compared as the file holds them
    for metric in sorted(set(saved.get("metrics") or {}) | set(recomputed)):
        was, now = (saved.get("metrics") or {}).get(metric), recomputed.get(metric)
        if was != now:
            lines.append(f"{name}: {metric} saved {_short(was)}, recomputed {_short(now)}")
    return lines


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:117] + "..."
