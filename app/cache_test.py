"""Cache check: an HTTP-response cache store on a real cluster, why client-side sharding fails, and failover.

    python app/cache_test.py                       # the local stack (python app/stack.py up cluster), else :7000
    python app/cache_test.py --fault local --json out.json
    python app/cache_test.py --node redis.example:6379 --fault manual

The faults kill or fail over a primary: on servers the harness did not start only with
--allow-destructive; a graceful failover (and, with --allow-destructive, a kill) is undone afterwards.

Checks: store_basics, store_ttl, store_spread, store_clear, ring_vs_cluster, http_failover, rejoin.
Exit code: 0 all passed (WARN allowed), 1 a check failed, 2 setup error (one line on stderr).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import redis

from cluster_test import (
    Plan,
    Target,
    check_outputs,
    check_rejoin,
    cleanup,
    prepare,
    puts_back_roles,
    resolve_target,
    restart_after_broken_run,
)
from lib.checks.cache_checks import check_basics, check_clear, check_ring_vs_cluster, check_spread, check_ttl
from lib.checks.result import FAIL, ScenarioResult, SuiteReport, run_scenario
from lib.cluster_client import ClusterClient
from lib.errors import SetupError
from lib.faults.fault import undo_interrupted_fault
from lib.report.cache_report import cache_timeline, check_http_failover
from lib.report.plot import plot_timeline
from lib.report.report import (
    ManualPrompt,
    cli_main,
    console,
    err_console,
    finish,
    key_value_table,
    run_undoing_interrupts,
)
from lib.report.timeline import timeline_table
from lib.runs.cache_failover import CacheFailoverRun, run_cache_failover
from lib.runs.cluster_failover import wait_links_up
from lib.suites.cli import add_failover_options, parse_host_map
from lib.util import format_endpoint, key_namespace
from lib.waits import WaitTimeout
from lib.workload.cache_store import ClusterCacheStore


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python app/cache_test.py", description=__doc__.split("\n")[0])
    parser.add_argument("--node", action="append", metavar="HOST:PORT",
                        help="a cluster node (repeat for more); default: the local stack, else 127.0.0.1:7000")
    add_failover_options(parser, fault_help=("auto: local launcher kill, else docker kill; manual: you kill a primary; "
                                             "graceful: CLUSTER FAILOVER on a replica; none: no failover"),
                         host_map_fallback="the first node's host")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_outputs(args)
    host_map = parse_host_map(args.host_map, "node-7000=10.0.0.5")
    target = resolve_target(args)
    ns = key_namespace("cache")
    prompt = ManualPrompt()
    with ClusterClient(target.seeds, password=args.password, host_map=host_map) as client:
        plan = prepare(args, client, target, migrates=False, notify=prompt)  # a SetupError here: nothing written
        try:
            store = ClusterCacheStore.connect(target.seeds, f"{ns}c:", password=args.password,
                                              address_remap=client.remap)
        except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:  # the latter is no RedisError
            raise SetupError(f"no cluster reachable at {format_endpoint(*target.seeds[0])}: {exc} (start one: "
                             "python app/stack.py up cluster; or pass --node HOST:PORT)") from None
        try:
            return run_undoing_interrupts(lambda: run_suite(args, client, store, target, plan, ns),
                                          lambda: [n for n in [undo_interrupted_fault(plan.fault)] if n], prompt)
        finally:
            prompt.close()
            store.close()
            if problem := cleanup(client, ns):
                err_console.print(f"[yellow]{problem}[/]", soft_wrap=True)


def run_suite(args, client: ClusterClient, store: ClusterCacheStore, target: Target, plan: Plan, ns: str) -> int:
    shards = plan.shards
    console.print(key_value_table("Target", [
        ("seed nodes", ", ".join(format_endpoint(*s) for s in target.seeds) + f"  (from {target.source})"),
        ("server", plan.version), ("shards", len(shards)), ("store prefix", store.prefix)]))
    report = SuiteReport("cache", {"nodes": [format_endpoint(*s) for s in target.seeds],
                                   "server_version": plan.version, "shards": len(shards), "fault": args.fault,
                                   "prefix": store.prefix})
    report.add(run_scenario("store_basics", lambda: check_basics(store)))
    report.add(run_scenario("store_ttl", lambda: check_ttl(store)))
    report.add(run_scenario("store_spread", lambda: check_spread(store, shards)))
    report.add(run_scenario("store_clear", lambda: check_clear(store, client, shards, f"{ns}foreign:")))
    expiration = datetime.now(UTC) + timedelta(minutes=1)
    report.add(run_scenario("ring_vs_cluster", lambda: check_ring_vs_cluster(store, client, shards, expiration)))

    fault = plan.fault
    run, failed = None, None
    if fault is not None:
        try:
            run = failover(args, client, store, plan)
        except (WaitTimeout, redis.RedisError, redis.exceptions.RedisClusterException, RuntimeError) as exc:
            failed = ScenarioResult("http_failover", FAIL, f"the failover run stopped: {type(exc).__name__}: {exc}"
                                    f"{restart_after_broken_run(fault, plan.history)}", {"fault": fault.description})
    elif args.plot:
        console.print("[yellow]--plot: no failover ran (--fault none), nothing to plot[/]")
    report.add(failed or run_scenario("http_failover", lambda: check_http_failover(
        run, "--fault none" if fault is None else None)))
    report.add(run_scenario("rejoin", lambda: check_rejoin(
        client, run, fault, args.manual_timeout if fault and fault.by_hand else 30,
        put_back=puts_back_roles(args, fault))))
    if run is not None:
        hidden = ("history", "timeline", "middleware")
        shown = {k: v for k, v in report.scenarios[-2].metrics.items() if k not in hidden}
        if "hit_ratio" in shown:
            shown["hit_ratio"] = f"{shown['hit_ratio']:.1%}"
        console.print(key_value_table("HTTP under failover", shown))
    return finish(report, args.json)


def failover(args, client: ClusterClient, store: ClusterCacheStore, plan: Plan) -> CacheFailoverRun:
    """The HTTP cache through the fault, its timeline printed (and plotted with --plot)."""
    wait_links_up(client, plan.shards, timeout=60)
    run = run_cache_failover(client, store, plan.fault, plan.shards, plan.victim,
                             recovery_timeout=args.recovery_timeout, history=plan.history, progress=console.print)
    timeline = cache_timeline(run)
    console.print(timeline_table(timeline, "Cache failover timeline (seconds from the fault)"))
    if args.plot:
        written = plot_timeline(timeline, args.plot, f"HTTP cache under failover: {run.fault}")
        console.print(f"timeline plot written to {written}")
    return run


if __name__ == "__main__":
    cli_main(main)
