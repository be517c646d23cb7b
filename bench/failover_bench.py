"""Failover benchmark: N real failovers of each kind on local stacks, and how far to trust our numbers.

    .venv/bin/python bench/failover_bench.py                    # 3 HA + 3 cluster runs, 3 cluster bring-ups
    .venv/bin/python bench/failover_bench.py --runs 5 --kinds ha --json results/bench.json

Each run is what a user runs: `stack.py run KIND --free-ports -- KIND_test.py --json` (stack up,
suite, stack down), timed from outside. Its JSON gives, per run: server-side failover time, the
downtime our harness reports and the one an independent 5 ms probe saw (the difference is our
measurement error), and how long after the promotion our client and a plain redis-py client with
default settings wrote again. Not a test: it prints medians and spreads, and writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "app"))

from rich.console import Console  # noqa: E402 - after the path is set, as app/ scripts expect
from rich.table import Table  # noqa: E402

from lib.launcher.local_stack import LocalStack  # noqa: E402
from lib.topology.topology import load_topology  # noqa: E402
from lib.util import free_ports  # noqa: E402

console = Console(highlight=False)
GOALS = {"measurement_error_ms": 50, "ours_after_promotion_ms": 50, "wall_s": 15, "bring_up_s": 2}


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def run_suite(kind: str, workdir: Path, index: int, plot: bool, extra: tuple[str, ...] = (),
              label: str | None = None) -> dict:
    """One whole run from stack up to stack down, as a user types it; the figures from its JSON.

    extra: more arguments for the suite (e.g. --fault pause); label names the run's files (default: kind).
    """
    name = label or kind
    out = workdir / f"{name}-{index}.json"
    script = [sys.executable, f"app/{kind}_test.py", "--json", str(out), *extra]
    if plot:
        script += ["--plot", str(workdir / f"{name}-{index}.png")]
    command = [sys.executable, "app/stack.py", "run", kind, "--free-ports", "--state-dir",
               str(workdir / f"{name}-{index}-stack"), "--", *script]
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=600)
    wall_s = time.monotonic() - started
    (workdir / f"{name}-{index}.log").write_text(proc.stdout + proc.stderr)
    row = {"kind": kind, "run": index, "exit_code": proc.returncode, "wall_s": round(wall_s, 2),
           "load1_before": round(load_before, 2), "load1_after": round(os.getloadavg()[0], 2)}
    if not out.exists():
        row["error"] = (proc.stderr or proc.stdout)[-500:]
        return row
    scenarios = {s["scenario"]: s["metrics"] for s in json.loads(out.read_text())["scenarios"]}
    row.update(ha_figures(scenarios) if kind == "ha" else cluster_figures(scenarios))
    if row.get("harness_downtime_ms") is not None and row.get("probe_downtime_ms") is not None:
        row["measurement_error_ms"] = round(row["harness_downtime_ms"] - row["probe_downtime_ms"], 1)
    return row


def ha_figures(scenarios: dict[str, dict]) -> dict:
    kill, new, reconnect = scenarios.get("master_kill", {}), scenarios.get("new_master", {}), scenarios.get(
        "reconnect", {})
    events = kill.get("timeline", {}).get("events", [])
    first = {}
    for event in events:
        first.setdefault(event["event"], event["t_s"])
    # Promotion "seen by the servers" is +switch-master: the sentinels announce the new master
    # (+promoted-slave, the leader seeing the replica's new role, comes ~30-100 ms before it).
    return {"server_failover_s": new.get("switch_master_s"), "detect_s": first.get("+sdown"),
            "promoted_slave_s": first.get("+promoted-slave"),
            "harness_downtime_ms": kill.get("downtime_ms"), "probe_downtime_ms": reconnect.get("probe_downtime_ms"),
            "plain_downtime_ms": reconnect.get("plain_downtime_ms"),
            "ours_after_promotion_ms": reconnect.get("ours_after_switch_ms"),
            "plain_after_promotion_ms": reconnect.get("plain_after_switch_ms")}


def cluster_figures(scenarios: dict[str, dict]) -> dict:
    failure = scenarios.get("primary_failure", {})
    # The cluster's independent probe is the plain RedisCluster writing every 5 ms to the same shard.
    return {"server_failover_s": failure.get("promoted_after_s"), "detect_s": failure.get("node_flagged_pfail_s"),
            "fail_s": failure.get("node_flagged_fail_s"),
            "harness_downtime_ms": failure.get("affected_downtime_ms"),
            "probe_downtime_ms": failure.get("plain_downtime_ms"),
            "plain_downtime_ms": failure.get("plain_downtime_ms"),
            "ours_after_promotion_ms": failure.get("ours_after_promotion_ms"),
            "plain_after_promotion_ms": failure.get("plain_after_promotion_ms")}


def bring_up(workdir: Path, index: int) -> dict:
    """Cluster bring-up to ready (servers answer, init done, cluster_state:ok, replica links up)."""
    topology = load_topology("cluster")
    ports = [s.port for s in topology.services.values() if s.port]
    port_map = dict(zip(ports, free_ports(len(ports), also_free_offset=10000), strict=True))
    stack = LocalStack(topology, workdir / f"bring-up-{index}", port_map, tie_to_parent=True)
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    try:
        stack.up(timeout=60)
        up_s = time.monotonic() - started
    finally:
        stack.down()
    return {"kind": "cluster bring-up", "run": index, "bring_up_s": round(up_s, 2),
            "load1_before": round(load_before, 2)}


def summarise(rows: list[dict], metric: str) -> dict | None:
    values = [r[metric] for r in rows if r.get(metric) is not None]
    if not values:
        return None
    return {"median": round(statistics.median(values), 3), "min": min(values), "max": max(values), "n": len(values)}


METRICS = [("detect_s", "failure detected (HA +sdown, cluster PFAIL), s"),
           ("server_failover_s", "server-side failover (fault → HA +switch-master, cluster promotion), s"),
           ("harness_downtime_ms", "downtime, harness, ms"),
           ("probe_downtime_ms", "downtime, independent 5 ms probe, ms"),
           ("measurement_error_ms", "harness − probe, ms (goal |x| ≤ 50)"),
           ("ours_after_promotion_ms", "our client writes after promotion, ms (goal ≤ 50)"),
           ("plain_after_promotion_ms", "plain redis-py writes after promotion, ms"),
           ("wall_s", "whole run, stack up → down, s (goal ≤ 15)"),
           ("bring_up_s", "cluster bring-up to ready, s (goal ≤ 2)")]


def fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def summary_table(summary: dict[str, dict]) -> Table:
    table = Table(title="Failover benchmark: median [min – max] (n)")
    table.add_column("figure")
    for kind in summary:
        table.add_column(kind, justify="right")
    for metric, label in METRICS:
        cells = []
        for kind in summary:
            s = summary[kind].get(metric)
            cells.append("" if s is None else f"{fmt(s['median'])} [{fmt(s['min'])} – {fmt(s['max'])}] ({s['n']})")
        if any(cells):
            table.add_row(label, *cells)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="failovers of each kind")
    parser.add_argument("--kinds", default="ha,cluster", help="comma-separated: ha, cluster")
    parser.add_argument("--bring-ups", type=int, default=3, help="timed cluster bring-ups (0: none)")
    parser.add_argument("--json", default="results/bench.json", metavar="PATH")
    parser.add_argument("--plot", action="store_true", help="also write each run's timeline PNG (needs matplotlib)")
    parser.add_argument("--keep", metavar="DIR", help="keep each run's JSON, log and plot in DIR")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="vhc-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started_load = load()
    rows: list[dict] = []
    try:
        for index in range(args.runs):
            for kind in kinds:
                console.print(f"{kind} run {index + 1}/{args.runs} ({load()}) ...")
                rows.append(run_suite(kind, workdir, index, args.plot))
                console.print(f"  {json.dumps(rows[-1])}")
        for index in range(args.bring_ups):
            rows.append(bring_up(workdir, index))
            console.print(f"cluster bring-up {index + 1}/{args.bring_ups}: {rows[-1]['bring_up_s']} s")
    except KeyboardInterrupt:
        console.print("interrupted: summarising the runs so far")
    summary = {}
    for kind in [*kinds, "cluster bring-up"]:
        mine = [r for r in rows if r["kind"] == kind]
        if mine:
            summary[kind] = {m: s for m, _ in METRICS if (s := summarise(mine, m)) is not None}
    console.print(summary_table(summary))
    failed = [r for r in rows if r.get("exit_code") not in (None, 0)]
    result = {"command": " ".join([Path(sys.executable).name, "bench/failover_bench.py", *(argv or sys.argv[1:])]),
              "started_load": started_load, "finished_load": load(), "cpus": os.cpu_count(), "goals": GOALS,
              "summary": summary, "runs": rows}
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"{started_load} at start, {load()} at the end; JSON written to {out}; runs kept in {workdir}")
    if failed:
        console.print(f"[red]{len(failed)} run(s) exited non-zero: {[(r['kind'], r['run']) for r in failed]}[/]")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
