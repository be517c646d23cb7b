"""Which client, which server: the same failover through several client libraries, on several server versions.

    .venv/bin/python bench/matrix.py --topology cluster --servers valkey-9.0,valkey-8.1 \\
        --clients ours,redis-py,valkey-py,glide --faults kill --runs 3 --json results/matrix.json

Each run is what a user types: `stack.py run TOPOLOGY --free-ports --server SERVER -- SUITE --client
CLIENTS --fault FAULT --json FILE` (a fresh local stack of that server, the suite, the stack down). The
libraries of one run write side by side during the same fault (one writer per shard each, the same rate,
a key prefix each), so they are compared on the same failover. Printed: medians and [min – max] per
topology × fault × server × client; written: the JSON of every run and the summary, and one plot per
topology (median downtime on the failed shard, with its range). Not a test: it measures.
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

from lib.clients.libraries.base import client_names  # noqa: E402
from lib.faults import registry  # noqa: E402
from lib.launcher.servers import CATALOG as SERVERS  # noqa: E402

console = Console(highlight=False)
SUITES = {"ha": "app/ha_test.py", "cluster": "app/cluster_test.py"}
FAULT_ALIASES = {"kill": registry.DEFAULT}  # the matrix's name for the suites' default fault (SIGKILL)
# (row key, column title): the per-client figures summarised as median [min – max]
FIGURES = [("downtime_ms", "down ms"), ("after_promotion_ms", "after promotion ms"),
           ("healthy_stall_ms", "healthy gap ms"), ("healthy_rate_kept_pct", "healthy rate %"),
           ("acked_lost", "lost"), ("unknown", "unknown"), ("connections_seen", "conns ≥"),
           ("refreshes", "refreshes")]
# the faults a matrix can run unattended (no person, no user command), as their facts say
UNATTENDED = [*FAULT_ALIASES, *dict.fromkeys([*registry.unattended("sentinel", "ha"),
                                              *registry.unattended("cluster", "cluster")])]
SERVER_FIGURES = [("promotion_s", "promotion s"), ("topology_commands_total", "topology cmds (all)")]


class UsageError(Exception):
    """Bad input: one line, exit code 2."""


def parse_list(text: str, allowed: list[str] | tuple[str, ...], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError(f"--{what}: name at least one of {', '.join(allowed)}")
    for name in names:
        if name not in allowed:
            raise UsageError(f"--{what}: unknown {name!r}; choose from {', '.join(allowed)}")
    return names


def run_once(topology: str, server: str, fault: str, clients: list[str], workdir: Path, index: int,
             client_timeout: float) -> dict:
    """One whole run, stack up to stack down, timed from outside; the figures from its JSON."""
    name = f"{topology}-{server}-{fault}-{index}"
    out = workdir / f"{name}.json"
    suite = [sys.executable, SUITES[topology], "--json", str(out), "--client", ",".join(clients),
             "--fault", FAULT_ALIASES.get(fault, fault), "--client-timeout", str(client_timeout)]
    command = [sys.executable, "app/stack.py", "run", topology, "--free-ports", "--server", server,
               "--state-dir", str(workdir / f"{name}-stack"), "--", *suite]
    started = time.monotonic()
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=900)
    (workdir / f"{name}.log").write_text(proc.stdout + proc.stderr)
    base = {"topology": topology, "server": server, "fault": fault, "run": index, "exit_code": proc.returncode,
            "wall_s": round(time.monotonic() - started, 1), "load1": round(os.getloadavg()[0], 2)}
    if not out.exists():
        return {**base, "error": (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]}
    saved = json.loads(out.read_text())
    scenarios = {s["scenario"]: s for s in saved["scenarios"]}
    comparison = scenarios.get("client_comparison", {}).get("metrics", {})
    base["server_version"] = saved.get("target", {}).get("server_version") or saved.get("server_version")
    base["promotion_s"] = promotion_s(topology, scenarios)
    base["servers"] = comparison.get("servers")
    base["topology_commands_total"] = (comparison.get("servers") or {}).get("topology_commands_total")
    base["clients"] = [client_figures(row) for row in comparison.get("clients", [])]
    if not base["clients"]:
        base["error"] = [scenarios.get("client_comparison", {}).get("detail", "no client_comparison in the JSON")]
    return base


def promotion_s(topology: str, scenarios: dict) -> float | None:
    if topology == "cluster":
        return scenarios.get("primary_failure", {}).get("metrics", {}).get("promoted_after_s")
    return scenarios.get("new_master", {}).get("metrics", {}).get("switch_master_s")


def client_figures(row: dict) -> dict:
    acc = row.get("accounting") or {}
    return {"client": row["client"], "version": row.get("version"), "why": row.get("why"),
            "downtime_ms": row.get("downtime_ms"), "after_promotion_ms": row.get("after_promotion_ms"),
            "healthy_stall_ms": row.get("healthy_stall_ms"), "healthy_rate_kept_pct": row.get("healthy_rate_kept_pct"),
            "acked": acc.get("acked"), "acked_lost": acc.get("acked_lost"), "unknown": acc.get("unknown"),
            "errors_by_type": row.get("errors_by_type"), "connections_seen": row.get("connections_seen"),
            "refreshes": row.get("refreshes"), "notes": row.get("notes", [])}


def summarise(values: list[float | None]) -> dict | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    return {"median": round(statistics.median(present), 3), "min": round(min(present), 3),
            "max": round(max(present), 3), "n": len(present)}


def summary(runs: list[dict]) -> list[dict]:
    """One entry per topology × fault × server × client, in the order they ran."""
    cells: dict[tuple, dict] = {}
    for run in runs:
        for row in run.get("clients", []):
            key = (run["topology"], run["fault"], run["server"], row["client"])
            cell = cells.setdefault(key, {"topology": key[0], "fault": key[1], "server": key[2], "client": key[3],
                                          "server_versions": [], "client_version": row.get("version"), "rows": [],
                                          "server_rows": []})
            cell["rows"].append(row)
            cell["server_rows"].append(run)
            if run.get("server_version") not in cell["server_versions"]:
                cell["server_versions"].append(run.get("server_version"))
    out = []
    for cell in cells.values():
        rows, server_rows = cell.pop("rows"), cell.pop("server_rows")
        cell["runs"] = len(rows)
        cell["not_recovered"] = [r["why"] for r in rows if r.get("why")]
        for key, _ in FIGURES:
            cell[key] = summarise([r.get(key) for r in rows])
        for key, _ in SERVER_FIGURES:
            cell[key] = summarise([r.get(key) for r in server_rows])
        out.append(cell)
    return out


def fmt(s: dict | None) -> str:
    if s is None:
        return "-"
    def one(v: float) -> str:
        return f"{v:,.0f}" if abs(v) >= 10 else f"{v:.2f}".rstrip("0").rstrip(".")
    return one(s["median"]) if s["min"] == s["max"] else f"{one(s['median'])} [{one(s['min'])}–{one(s['max'])}]"


def table(cells: list[dict], runs: int) -> Table:
    t = Table(title=f"Client × server matrix: median [min–max] of {runs} run(s)", title_justify="left")
    for column in ("topology / fault", "server", "client", *(title for _, title in SERVER_FIGURES[:1]),
                   *(title for _, title in FIGURES)):
        t.add_column(column, justify="left" if column in ("topology / fault", "server", "client") else "right",
                     overflow="fold")
    for cell in cells:
        server = f"{cell['server']} ({', '.join(str(v) for v in cell['server_versions'])})"
        client = f"{cell['client']} {cell.get('client_version') or ''}".strip()
        if cell["not_recovered"]:
            client += f" — {len(cell['not_recovered'])} run(s) did not recover"
        t.add_row(f"{cell['topology']} / {cell['fault']}", server, client, fmt(cell["promotion_s"]),
                  *(fmt(cell[key]) for key, _ in FIGURES))
    return t


def plot(cells: list[dict], topology: str, path: Path) -> Path | None:
    """One figure per topology: a panel per fault (its own scale: a kill costs seconds, a graceful failover
    milliseconds), bars per client grouped by server: the median downtime on the failed shard, whiskers
    the range. None when matplotlib is missing or nothing was measured."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    mine = [c for c in cells if c["topology"] == topology and c["downtime_ms"]]
    if not mine:
        return None
    faults = list(dict.fromkeys(c["fault"] for c in mine))
    servers = list(dict.fromkeys(c["server"] for c in mine))
    clients = list(dict.fromkeys(c["client"] for c in mine))
    fig, axes = plt.subplots(len(faults), 1, figsize=(min(12, 2 + 1.6 * len(clients)), 3.2 * len(faults)),
                             squeeze=False)
    width = 0.8 / len(servers)
    for ax, fault in zip(axes[:, 0], faults, strict=True):
        for i, server in enumerate(servers):
            xs, ys, low, high = [], [], [], []
            for j, client in enumerate(clients):
                cell = next((c for c in mine if (c["fault"], c["server"], c["client"]) == (fault, server, client)),
                            None)
                if cell is None:
                    continue
                d = cell["downtime_ms"]
                xs.append(j + i * width)
                ys.append(d["median"])
                low.append(d["median"] - d["min"])
                high.append(d["max"] - d["median"])
            ax.bar(xs, ys, width, yerr=[low, high], capsize=3, label=server)
        ax.set_xticks([j + width * (len(servers) - 1) / 2 for j in range(len(clients))], clients)
        ax.set_ylabel("downtime, ms")
        ax.set_title(f"{topology} / {fault}: downtime on the failed shard (median, range)", fontsize="small")
        ax.set_ylim(top=ax.get_ylim()[1] * 1.25)  # room for the legend above the bars
        ax.legend(fontsize="small", ncols=len(servers), loc="upper center")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def replot(saved: Path, out_dir: Path) -> list[str]:
    """The plots again from a saved --json (no run)."""
    data = json.loads(saved.read_text())
    topologies = list(dict.fromkeys(c["topology"] for c in data["summary"]))
    return [str(p) for t in topologies
            if (p := plot(data["summary"], t, out_dir / f"{saved.stem}-{t}.png")) is not None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--topology", default="ha,cluster", help="ha, cluster or both (default ha,cluster)")
    parser.add_argument("--servers", default="valkey-9.0",
                        help=f"comma-separated: {', '.join(SERVERS)} (default valkey-9.0)")
    parser.add_argument("--clients", default="ours,redis-py,valkey-py,glide",
                        help="comma-separated, side by side in each run (default: all four)")
    parser.add_argument("--faults", default="kill",
                        help=f"comma-separated: {', '.join(UNATTENDED)} (default kill: the suites' SIGKILL)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each topology × fault × server (default 3)")
    parser.add_argument("--client-timeout", type=float, default=30.0, metavar="S",
                        help="how long after the promotion a library may take to write again (default 30)")
    parser.add_argument("--json", default="results/matrix.json", metavar="PATH",
                        help="where the JSON goes (default results/matrix.json)")
    parser.add_argument("--plot-dir", default=None, metavar="DIR", help="where the plots go (default: beside --json)")
    parser.add_argument("--keep", metavar="DIR", help="keep each run's JSON and log in DIR")
    parser.add_argument("--replot", metavar="FILE.json", help="only draw the plots of a saved --json (no run)")
    args = parser.parse_args(argv)
    if args.replot:
        if not Path(args.replot).is_file():
            print(f"error: --replot {args.replot}: no such file", file=sys.stderr)
            return 2
        console.print(f"plots: {', '.join(replot(Path(args.replot), Path(args.plot_dir or Path(args.replot).parent)))}")
        return 0
    try:
        topologies = parse_list(args.topology, list(SUITES), "topology")
        servers = parse_list(args.servers, list(SERVERS), "servers")
        clients = client_names(args.clients)
        faults = parse_list(args.faults, UNATTENDED, "faults")
        if args.runs < 1:
            raise UsageError(f"--runs {args.runs}: give 1 or more")
    except (UsageError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="vhc-matrix-"))
    workdir.mkdir(parents=True, exist_ok=True)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs: list[dict] = []
    total = len(topologies) * len(faults) * len(servers) * args.runs
    try:
        for index in range(args.runs):
            for topology in topologies:
                for fault in faults:
                    for server in servers:
                        console.print(f"[{len(runs) + 1}/{total}] {topology} {fault} on {server}, clients "
                                      f"{','.join(clients)} (load {os.getloadavg()[0]:.2f}) ...")
                        runs.append(run_once(topology, server, fault, clients, workdir, index, args.client_timeout))
                        brief = runs[-1].get("error") or [f"{r['client']} {r['downtime_ms']} ms"
                                                          for r in runs[-1]["clients"]]
                        console.print(f"  exit {runs[-1]['exit_code']}, {runs[-1]['wall_s']} s: {brief}")
    except KeyboardInterrupt:
        console.print("interrupted: summarising the runs so far")
    cells = summary(runs)
    console.print(table(cells, args.runs))
    result = {"command": " ".join(["python", "bench/matrix.py", *(argv if argv is not None else sys.argv[1:])]),
              "cpus": os.cpu_count(), "summary": cells, "runs": runs, "plots": []}
    out.write_text(json.dumps(result, indent=2) + "\n")  # first: a plot that fails must not lose the runs
    plots = []
    for topology in topologies:
        target = Path(args.plot_dir or out.parent) / f"{out.stem}-{topology}.png"
        try:
            if plot(cells, topology, target) is not None:
                plots.append(str(target))
        except OSError as exc:
            console.print(f"[yellow]plot {target} not written: {exc}[/]")
    result["plots"] = plots
    out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"JSON written to {out}; plots: {', '.join(plots) or 'none'}; runs kept in {workdir}")
    failed = [r for r in runs if r.get("error")]
    if failed:
        console.print(f"[red]{len(failed)} run(s) gave no client rows: "
                      f"{[(r['topology'], r['server'], r['fault'], r['run']) for r in failed]}[/]")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
