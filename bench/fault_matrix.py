"""Fault matrix: each fault x {HA, cluster}, N runs each, on fresh local stacks; medians and ranges.

    .venv/bin/python bench/fault_matrix.py --runs 3 --json results/faults.json
    .venv/bin/python bench/fault_matrix.py --topologies ha --faults pause,partition --runs 5

Each run is what a user types: `stack.py run KIND --free-ports -- KIND_test.py --fault F --json` (stack up,
suite, stack down). From its JSON: when the failure was detected (HA +sdown, cluster PFAIL), when the
replica was promoted (HA +switch-master, cluster promotion), the client's downtime, and the acknowledged
writes lost (lib/checks/accounting.py). A run that exits non-zero is listed with its exit code: a FAIL is a
result here (a partition without min-replicas is expected to lose writes), not a crash of the bench.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from failover_bench import cluster_figures, fmt, ha_figures, load, run_suite, summarise
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
from lib.faults import registry  # noqa: E402 - after the path is set, as app/ scripts expect

# every fault each topology can run unattended, from the faults' own facts (lib/faults/registry.py)
FAULTS = {"ha": tuple(registry.unattended("sentinel", "ha")),
          "cluster": tuple(registry.unattended("cluster", "cluster"))}
METRICS = [("detect_s", "detected, s"), ("server_failover_s", "promoted, s"),
           ("harness_downtime_ms", "downtime, ms"), ("acked", "acked writes"), ("acked_lost", "acked lost")]
VERDICT = {"ha": "consistency", "cluster": "primary_failure"}  # the check that judges the loss
console = Console(highlight=False)


def accounting(path: Path) -> dict:
    """acked / acked_lost from whichever check saved the accounting (HA consistency, cluster primary_failure)."""
    if not path.exists():
        return {}
    for scenario in json.loads(path.read_text())["scenarios"]:
        metrics = scenario.get("metrics") or {}
        if "acked_lost" in metrics:
            return {"acked": metrics.get("acked"), "acked_lost": metrics.get("acked_lost"),
                    "lost_acked_window_s": metrics.get("lost_acked_window_s")}
    return {}


def one_run(kind: str, fault: str, workdir: Path, index: int, extra: tuple[str, ...]) -> dict:
    label = f"{kind}-{fault}"
    row = run_suite(kind, workdir, index, plot=False, extra=("--fault", fault, *extra), label=label)
    row.update({"fault": fault, **accounting(workdir / f"{label}-{index}.json")})
    if "error" not in row:
        scenarios = {s["scenario"]: s for s in json.loads((workdir / f"{label}-{index}.json").read_text())["scenarios"]}
        row["statuses"] = {name: s["status"] for name, s in scenarios.items()}
        figures = ha_figures({n: s["metrics"] for n, s in scenarios.items()}) if kind == "ha" else cluster_figures(
            {n: s["metrics"] for n, s in scenarios.items()})
        row.update({k: v for k, v in figures.items() if k not in row})
    return row


def matrix_table(summary: dict[str, dict[str, dict]], rows: list[dict], kind: str) -> Table:
    table = Table(title=f"{kind}: median (min–max) over the runs")
    table.add_column("fault")
    for _, label in METRICS:
        table.add_column(label, justify="right")
    table.add_column(f"{VERDICT[kind]} verdicts")
    for fault, metrics in summary.items():
        cells = []
        for metric, _ in METRICS:
            s = metrics.get(metric)
            cells.append("—" if s is None else fmt(s["median"]) if s["min"] == s["max"] else
                         f"{fmt(s['median'])} ({fmt(s['min'])}–{fmt(s['max'])})")
        verdicts = [r.get("statuses", {}).get(VERDICT[kind], "crashed") for r in rows
                    if r["kind"] == kind and r["fault"] == fault]
        table.add_row(fault, *cells, " ".join(f"{v}×{verdicts.count(v)}" for v in dict.fromkeys(verdicts)))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--topologies", default="ha,cluster")
    parser.add_argument("--faults", help="comma-separated (default: every fault of each topology)")
    parser.add_argument("--suite-args", default="",
                        help="more arguments for every run, e.g. '--min-replicas-to-write 1'")
    parser.add_argument("--json", default="results/faults.json", metavar="PATH")
    parser.add_argument("--keep", metavar="DIR", help="keep each run's JSON and log in DIR")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.topologies.split(",") if k.strip()]
    if unknown := [k for k in kinds if k not in FAULTS]:
        parser.error(f"--topologies: unknown {unknown}; choose from {', '.join(FAULTS)}")
    wanted = [f.strip() for f in args.faults.split(",")] if args.faults else None
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="vhc-faults-"))
    workdir.mkdir(parents=True, exist_ok=True)
    extra = tuple(args.suite_args.split())
    started_load = load()
    rows: list[dict] = []
    try:
        for kind in kinds:
            for fault in [f for f in FAULTS[kind] if wanted is None or f in wanted]:
                for index in range(args.runs):
                    console.print(f"{kind} --fault {fault} run {index + 1}/{args.runs} ({load()}) ...")
                    rows.append(one_run(kind, fault, workdir, index, extra))
                    shown = {k: rows[-1].get(k) for k in ("exit_code", "detect_s", "server_failover_s",
                                                          "harness_downtime_ms", "acked", "acked_lost")}
                    console.print(f"  {shown}")
    except KeyboardInterrupt:
        console.print("interrupted: summarising the runs so far")
    summary: dict[str, dict[str, dict]] = {}
    for kind in kinds:
        summary[kind] = {}
        for fault in dict.fromkeys(r["fault"] for r in rows if r["kind"] == kind):
            mine = [r for r in rows if r["kind"] == kind and r["fault"] == fault]
            summary[kind][fault] = {m: s for m, _ in METRICS if (s := summarise(mine, m)) is not None}
        console.print(matrix_table(summary[kind], rows, kind))
    result = {"command": " ".join(["python", "bench/fault_matrix.py", *(argv if argv is not None else sys.argv[1:])]),
              "started_load": started_load, "finished_load": load(), "cpus": os.cpu_count(),
              "summary": summary, "runs": rows}
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    console.print(f"JSON written to {out}; runs kept in {workdir}")
    crashed = [r for r in rows if "error" in r]
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
