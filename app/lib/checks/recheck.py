"""`--recheck FILE.json`: the consistency verdicts recomputed from a saved report's history and final read alone.

Trusts nothing the run concluded: each write is re-classified from its saved attempts and compared with
the saved final read (lib/checks/accounting.py), then set against the verdict the file holds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lib.checks.accounting import Accounting, account_history, judge
from lib.checks.result import FAIL, OK, WARN, ScenarioResult, SuiteReport
from lib.errors import SetupError

SYSTEMS = {"ha": "Sentinel", "cluster": "Valkey Cluster"}  # whose min-replicas bound the verdict quotes
ACCOUNTED = ("acked", "acked_lost", "unknown", "unknown_applied", "unknown_lost", "failed_present",
             "lost_acked_window_s")
SEVERITY = {OK: 0, WARN: 1, FAIL: 2}


def recheck(path: str | Path, expect_suite: str | None = None) -> tuple[SuiteReport, list[str]]:
    """The saved report with its consistency verdicts recomputed, and a line for each place they differ.

    expect_suite: the suite asking (a cluster file handed to ha_test.py is a SetupError naming the right one).
    """
    body = _load(Path(path))
    report = SuiteReport(body["suite"], body.get("target") or {},
                         [ScenarioResult(s["scenario"], s["status"], s.get("detail", ""), s.get("metrics") or {})
                          for s in body["scenarios"]])
    if expect_suite is not None and report.suite != expect_suite:
        raise SetupError(f"--recheck {path}: the file holds a {report.suite} suite run; recheck it with its own "
                         f"script: python app/{report.suite}_test.py --recheck {path}")
    holders = [s for s in report.scenarios if isinstance(s.metrics.get("history"), dict)]
    if not holders:
        why = "; ".join(f"{s.scenario}: {s.detail}" for s in report.scenarios if s.status != OK)[:200]
        raise SetupError(f"--recheck {path}: no recorded history in it, so nothing to recompute ({why or 'no run'})")
    if not any("value" in op for s in holders for op in s.metrics["history"].get("ops", [])):
        raise SetupError(f"--recheck {path}: its history ({report.suite}) holds no writes with their values, so "
                         "there is no lost-write verdict to recompute")
    lines: list[str] = []
    for holder in holders:
        saved_history = holder.metrics["history"]
        if saved_history.get("final_read") is None:
            raise SetupError(f"--recheck {path}: no final read saved in {holder.scenario}'s history (written before "
                             "the harness recorded one, or the run never recovered): run the suite again with --json")
        try:
            acc = account_history(saved_history)
        except (KeyError, TypeError, ValueError) as exc:
            raise SetupError(f"--recheck {path}: {holder.scenario}'s history cannot be judged: {exc}") from None
        index = _verdict_index(report, holder)
        saved = report.scenarios[index]
        pinned = saved.metrics.get("old_master_history")  # HA: the writer kept on the old master
        if isinstance(pinned, dict) and pinned.get("final_read") is not None:
            acc = acc.merged(account_history(pinned))
        new = _recomputed(saved, acc, _max_lag(saved, report.target), SYSTEMS.get(report.suite, "Sentinel"))
        report.scenarios[index] = new
        lines += differences(saved, new)
    return report, lines


def _load(path: Path) -> dict[str, Any]:
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        raise SetupError(f"--recheck {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SetupError(f"--recheck {path}: not readable as JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(body, dict) or "suite" not in body or not isinstance(body.get("scenarios"), list):
        raise SetupError(f"--recheck {path}: not a suite's --json report (no suite and scenarios in it)")
    return body


def _verdict_index(report: SuiteReport, holder: ScenarioResult) -> int:
    """The consistency scenario if the suite has one (ha), else the scenario holding the history (cluster)."""
    names = [s.scenario for s in report.scenarios]
    return names.index("consistency") if "consistency" in names else names.index(holder.scenario)


def _max_lag(saved: ScenarioResult, target: dict[str, Any]) -> float | None:
    """The run's min-replicas-max-lag: an input of the verdict, saved with it (or in the target)."""
    for where in (saved.metrics, target):
        for name in ("min_replicas_max_lag_s", "min_replicas_max_lag"):
            if where.get(name) is not None:
                return float(where[name])
    return None


def _other_status(saved: ScenarioResult) -> str:
    """What a verdict held apart from lost writes, from its saved measurements (a cluster's stalled shards,
    a run that never recovered): a saved FAIL that counted no loss had another cause, and keeps it."""
    saved_lost = saved.metrics.get("acked_lost", saved.metrics.get("lost"))
    return FAIL if saved.status == FAIL and not saved_lost else OK


def _recomputed(saved: ScenarioResult, acc: Accounting, max_lag_s: float | None, system: str) -> ScenarioResult:
    status, detail = judge(acc, max_lag_s, system)
    other = _other_status(saved)
    if SEVERITY[other] > SEVERITY[status]:
        status = other
        detail = f"{detail}; and, apart from lost writes: {saved.detail.splitlines()[0]}"
    metrics = {**saved.metrics, **acc.metrics(), "min_replicas_max_lag_s": max_lag_s}
    return ScenarioResult(saved.scenario, status, detail, metrics)


def differences(saved: ScenarioResult, new: ScenarioResult) -> list[str]:
    """One line per place the recomputed verdict differs from the saved one (none: they agree)."""
    name = saved.scenario
    lines = []
    if saved.status != new.status:
        lines.append(f"{name}: saved {saved.status}, recomputed {new.status} from the saved history and final read: "
                     f"{new.detail.splitlines()[0]}")
    for metric in ACCOUNTED:
        if metric in saved.metrics and saved.metrics[metric] != new.metrics[metric]:
            lines.append(f"{name}: {metric} saved {saved.metrics[metric]}, recomputed {new.metrics[metric]}")
    if "lost" in saved.metrics and "acked_lost" not in saved.metrics and saved.metrics["lost"] != new.metrics[
            "acked_lost"]:
        lines.append(f"{name}: the run's own read-back found {saved.metrics['lost']} acknowledged writes lost, "
                     f"the saved final read {new.metrics['acked_lost']}")
    return lines
