"""Comparing one scenario's results across targets: which statuses and metric values differ.

Metrics are flattened to dotted paths ("sizes.1MB.encoding"). Per path, a difference is one of:
  status    the scenario's status differs
  missing   the metric exists on some targets only (e.g. a command only one server has)
  only-in   lists of names differ: which names each target has that the others lack
  value     any other unequal value (replies, encodings, memory, cursor steps)
  timing    a measurement (name ending _ms/_us) whose medians differ by more than timing_factor
Equal values, and timings within the factor, are not differences: timings are noisy on shared cores.
"""

from __future__ import annotations

import statistics
from typing import Any

from lib.checks.result import CheckResult

MISSING = "<absent>"
TIMING_SUFFIXES = ("_ms", "_us")
DEFAULT_TIMING_FACTOR = 2.0
TIMING_FLOOR_MS = 1.0  # below this, sub-millisecond jitter, not a difference
KIND_ORDER = ("status", "missing", "only-in", "value", "timing")  # what exists before how it behaves


def flatten(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def is_timing(path: str) -> bool:
    return path.rsplit(".", 1)[-1].endswith(TIMING_SUFFIXES)


def _typical(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list) and value and all(isinstance(v, int | float) for v in value):
        return float(statistics.median(value))
    return None


def _timings_differ(values: dict[str, Any], factor: float) -> bool:
    typical = [_typical(v) for v in values.values()]
    if any(t is None for t in typical):
        return True
    low, high = min(typical), max(typical)  # type: ignore[type-var]
    return high - low > TIMING_FLOOR_MS and high > factor * max(low, 1e-9)


def _names_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def compare_metric(path: str, values: dict[str, Any], timing_factor: float) -> dict[str, Any] | None:
    """One difference entry for this metric path, or None when the targets agree."""
    present = {t: v for t, v in values.items() if v is not MISSING}
    if len(present) < len(values):
        return {"metric": path, "kind": "missing", "values": {t: present.get(t, MISSING) for t in values}}
    if all(v == next(iter(values.values())) for v in values.values()):
        return None
    if is_timing(path):
        if not _timings_differ(values, timing_factor):
            return None
        return {"metric": path, "kind": "timing", "values": values}
    if all(_names_list(v) for v in values.values()):
        only_in = {t: sorted(set(v) - set().union(*(set(o) for u, o in values.items() if u != t)))
                   for t, v in values.items()}
        if any(only_in.values()):
            return {"metric": path, "kind": "only-in", "values": only_in}
    return {"metric": path, "kind": "value", "values": values}


def diff_scenario(name: str, by_target: dict[str, CheckResult | None],
                  timing_factor: float = DEFAULT_TIMING_FACTOR) -> dict[str, Any]:
    """Differences for one scenario; by_target maps target -> its result (None: not run there)."""
    statuses = {t: (r.status if r else MISSING) for t, r in by_target.items()}
    differences: list[dict[str, Any]] = []
    if len(set(statuses.values())) > 1:
        differences.append({"metric": "status", "kind": "status", "values": statuses})
    # Only targets that measured something are compared: a skipped scenario has no metrics.
    flat = {t: flatten(r.metrics) for t, r in by_target.items() if r and r.metrics}
    if len(flat) >= 2:
        for path in sorted(set().union(*flat.values())):
            entry = compare_metric(path, {t: m.get(path, MISSING) for t, m in flat.items()}, timing_factor)
            if entry is not None:
                differences.append(entry)
    differences.sort(key=lambda d: KIND_ORDER.index(d["kind"]))  # stable: paths stay sorted within a kind
    return {"scenario": name, "statuses": statuses, "differences": differences}


def diff_results(results: dict[str, list[CheckResult]],
                 timing_factor: float = DEFAULT_TIMING_FACTOR) -> dict[str, Any]:
    """The diff over every scenario any target ran; results maps target -> its results."""
    names: list[str] = []
    for scenario_list in results.values():
        names += [r.name for r in scenario_list if r.name not in names]
    by_name = {t: {r.name: r for r in rs} for t, rs in results.items()}
    scenarios = [diff_scenario(n, {t: by_name[t].get(n) for t in results}, timing_factor) for n in names]
    return {"targets": list(results), "timing_factor": timing_factor, "scenarios": scenarios,
            "differing": [s["scenario"] for s in scenarios if s["differences"]]}
