"""Shared fixtures: real local stacks on free ports, always stopped, with a check that nothing survives."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from lib.launcher import process
from lib.launcher.local_stack import STATE_FILE, LocalStack
from lib.topology.topology import load_topology
from lib.util import FREE_PORT_RANGE_ENV, REPO_ROOT, free_port_range, free_ports

BUS_PORT_OFFSET = 10000  # a cluster node's bus port is its port + 10000, as in docker-compose.cluster.yml


IN_CI = os.environ.get("CI") == "true"


def skip_or_fail_in_ci(reason: str) -> None:
    """Skip with the reason; under CI=true fail instead: CI installs everything, so a skip there hides a hole."""
    if IN_CI:
        pytest.fail(f"CI=true, so this test must run, but: {reason} (.ci/run installs what the tests need)")
    pytest.skip(reason)


@pytest.fixture
def partition_tools() -> None:
    """Root and iptables, which a real partition needs; else a skip that says why (a failure under CI=true)."""
    from lib.errors import SetupError
    from lib.faults.partition import require_partition_tools

    try:
        require_partition_tools()
    except SetupError as exc:
        skip_or_fail_in_ci(str(exc))


def start_stack(topology_name: str, state_dir: Path, *, bus_offset: int | None = None) -> LocalStack:
    """The topology from its compose file, every port replaced by a free one, tied to this process."""
    topology = load_topology(topology_name)
    ports = [s.port for s in topology.services.values() if s.port]
    port_map = dict(zip(ports, free_ports(len(ports), also_free_offset=bus_offset), strict=True))
    return LocalStack(topology, state_dir, port_map, tie_to_parent=True).up(timeout=60)


def recorded_pids(stack: LocalStack) -> set[int]:
    """Pids in memory and on disk (a script under test may have restarted a service meanwhile).

    Only a missing state file means "nothing more on disk"; a state file that cannot be read is an
    error here, because the pids it hides are exactly the ones the "nothing left running" check needs.
    """
    pids = {svc.pid for svc in stack.services.values() if svc.pid}
    if (stack.state_dir / STATE_FILE).exists():
        pids |= {svc.pid for svc in LocalStack.load(stack.state_dir).services.values() if svc.pid}
    return pids


def assert_all_stopped(pids: set[int]) -> None:
    alive = sorted(pid for pid in pids if process.is_alive(pid))
    assert not alive, f"processes left running: {alive}"


@contextlib.contextmanager
def running_stack(topology_name: str, state_dir: Path, *, bus_offset: int | None = None) -> Iterator[LocalStack]:
    """A local stack for one test (or module): always stopped, and checked that nothing survived."""
    stack = start_stack(topology_name, state_dir, bus_offset=bus_offset)
    try:
        yield stack
    finally:
        pids = recorded_pids(stack)
        stack.down()
        assert_all_stopped(pids)


@pytest.fixture
def ha_stack(tmp_path):
    with running_stack("ha", tmp_path / "ha") as stack:
        yield stack


@pytest.fixture(scope="module")
def cluster_stack(tmp_path_factory) -> Iterator[LocalStack]:
    """One six-node cluster per test module (bring-up ~4 s): the tests read its topology, so a
    failover done by one test does not break the next."""
    with running_stack("cluster", tmp_path_factory.mktemp("cluster") / "stack", bus_offset=BUS_PORT_OFFSET) as stack:
        yield stack


# ---- make test: the server tiers on several pytest-xdist workers (-n N) --------------------------

def deliverable_sigint() -> None:
    """Undo an inherited "ignore SIGINT": the Ctrl-C tests press Ctrl-C on the scripts they start.

    A shell starts a background job (`make test &`, a CI step run with `&` or nohup) with SIGINT ignored, the
    ignoring is inherited across exec, and a Python started that way never installs its KeyboardInterrupt
    handler: the suites then ran to the end through the tests' SIGINT (seen in a load run started by a script in
    the background: 8 interrupt tests failed). With a handler here, every process the tests start gets SIGINT's
    default again.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


DOCKER_TIER = "tests/docker/"
README_RUNS = "tests/test_readme.py"
TESTS_PER_UNIT = 2  # a module's tests go out in pairs: its stack starts once per pair (see work_units)


def pytest_configure(config):
    """SIGINT as a terminal gives it, whoever started pytest; an xdist worker takes its ports (its stacks' and
    those of the scripts it runs) from its own slice of the free-port range: another worker's new stack cannot
    take a port a killed server will restart on."""
    deliverable_sigint()
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if worker is None or count < 2:
        return
    low, high = free_port_range()
    size = (high - low) // count
    start = low + int(worker.removeprefix("gw")) * size
    os.environ[FREE_PORT_RANGE_ENV] = f"{start}-{start + size}"


def docker_unit(nodeid: str) -> str:
    """The Docker tier's two units, which may run side by side: the cluster's tests (ports 7000-7005 and
    17000-17005), and the others (the HA and the compat stacks both publish 6379-6380: one after the other).
    Each topology's tests run in a compose project of their own (tests/docker/compose_checks.py)."""
    return "docker-cluster" if "cluster" in nodeid.split("::", 1)[1] else "docker-ha"


def work_units(nodeids: list[str]) -> dict[str, str]:
    """node id -> the unit of work it belongs to: the tests one worker runs together, in order.

    The Docker tier is two units (docker_unit): fixed container names and ports. Every other test uses
    free ports and its own tmp dir. The README's runs are a unit each (the longest tests). A module's
    other tests go in runs of up to TESTS_PER_UNIT neighbours (in the order pytest_collection_modifyitems
    made), so that a module-scoped stack starts once per run (not per test) while a module of long fault
    runs still spreads over the workers. Pairs, not fours: runs of four fault tests (60-80 s each under
    load) left a tail where most workers idled.
    """
    units: dict[str, str] = {}
    server = []
    for nodeid in nodeids:
        path = module_of(nodeid)
        if path.startswith(DOCKER_TIER):
            units[nodeid] = docker_unit(nodeid)
        elif path == README_RUNS:
            units[nodeid] = nodeid
        else:
            server.append(nodeid)
    for number, run in enumerate(neighbour_runs(server)):
        units.update((nodeid, f"{module_of(nodeid)}#{number}") for nodeid in run)
    return units


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Any -n run (--dist load, the default, or loadscope) hands out our units, in collection order.

    Not xdist_group marks: under pytest 9.2 they no longer reach the scheduler (pytest-xdist#1386).
    """
    if config.getvalue("dist") not in ("load", "loadscope"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        units: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.units is None:  # every worker collected the same tests (checked by xdist)
                self.units = work_units(next(iter(self.registered_collections.values())))
            return self.units[nodeid]

    config.option.loadscopereorder = False  # the order is pytest_collection_modifyitems's, below
    return UnitScheduling(config, log)


def run_rank(item: pytest.Item) -> int:
    """Server-free tests first; then the longest work (the Docker tier, the README runs), which sets the wall time."""
    path = item.nodeid.split("::", 1)[0]
    if path.startswith(DOCKER_TIER):
        return 1
    if item.get_closest_marker("integration") is None:
        return 0
    return 2 if path == README_RUNS else 3


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """The order work is handed out in under -n, and run in without it.

    After the ranks, the server tests go out in runs of TESTS_PER_UNIT neighbours of a module, the
    longest runs first by their recorded durations (tests/durations.json; a test not recorded yet counts
    as the median). Module by module, the Sentinel fault runs (mostly waiting on timers) ran together and
    left 20-60 % of the CPU idle for a minute, and dealt round-robin, a module's last long runs came last
    and left a 20 s tail on one or two workers. Longest first, the short runs fill the end.
    """
    items.sort(key=run_rank)  # stable: each module's tests stay together and in order
    server = {item.nodeid: item for item in items if run_rank(item) == 3}
    ordered = longest_runs_first(list(server), recorded_durations())
    items[len(items) - len(server):] = [server[nodeid] for run in ordered for nodeid in run]


def longest_runs_first(nodeids: list[str], durations: dict[str, float]) -> list[list[str]]:
    """neighbour_runs, the longest first (by durations; a test without one counts as the median). Equal
    runs keep their order."""
    typical = statistics.median(durations.values()) if durations else 1.0
    return sorted(neighbour_runs(nodeids), key=lambda run: -sum(durations.get(nodeid, typical) for nodeid in run))


def neighbour_runs(nodeids: list[str]) -> list[list[str]]:
    """The tests, in order, cut into runs of up to TESTS_PER_UNIT neighbours of one module."""
    runs: list[list[str]] = []
    for nodeid in nodeids:
        if not runs or len(runs[-1]) == TESTS_PER_UNIT or module_of(runs[-1][0]) != module_of(nodeid):
            runs.append([])
        runs[-1].append(nodeid)
    return runs


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


# ---- tests/durations.json: how long each server test took (make durations) -----------------------

DURATIONS_FILE = Path(__file__).with_name("durations.json")
RECORD_DURATIONS_ENV = "VHC_RECORD_DURATIONS"  # =PATH: write this run's durations there (make durations)
_durations: Counter[str] = Counter()


def recorded_durations() -> dict[str, float]:
    """Seconds per test (setup + call + teardown) from the last `make durations`; {} if none."""
    try:
        return {nodeid: float(seconds) for nodeid, seconds in json.loads(DURATIONS_FILE.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def pytest_runtest_logreport(report):
    if os.environ.get(RECORD_DURATIONS_ENV) and "PYTEST_XDIST_WORKER" not in os.environ:  # the controller sees all
        _durations[report.nodeid] += report.duration


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get(RECORD_DURATIONS_ENV)
    if path and "PYTEST_XDIST_WORKER" not in os.environ and _durations:
        merged = {**recorded_durations(), **{nodeid: round(s, 1) for nodeid, s in _durations.items()}}
        Path(path).write_text(json.dumps(dict(sorted(merged.items())), indent=1) + "\n")


def saved_op_end(op: dict) -> float:
    """When an op of a saved history (lib.history.History.to_dict) finished, in seconds from the fault."""
    return op["t_s"] + op["ms"] / 1000


def outage_in_saved_ops(ops: list[dict]) -> tuple[float, float]:
    """(last ok end, first ok end) around the first failures after the fault, read from a saved history by
    the tests themselves, so that lib.checks.checker and lib.report.timeline_table are checked against a second
    computation."""
    ops = sorted(ops, key=lambda op: op["t_s"])
    first_failed = next(i for i, op in enumerate(ops) if op["outcome"] != "ok" and saved_op_end(op) >= 0
                        and any(o["outcome"] == "ok" for o in ops[:i]))
    last_ok = max(saved_op_end(op) for op in ops[:first_failed] if op["outcome"] == "ok")
    first_ok = next(saved_op_end(op) for op in ops[first_failed:] if op["outcome"] == "ok")
    return last_ok, first_ok


def first_events(history: dict) -> dict[str, float]:
    """event name -> when it was first seen (each sentinel announces the same event), from a saved history."""
    seen: dict[str, float] = {}
    for event in sorted(history["events"], key=lambda e: e["t_s"]):
        seen.setdefault(event["event"], event["t_s"])
    return seen


def sentinel_setting(name: str) -> int:
    """A setting of sentinel/sentinel.conf (both the compose stack and the local one run it), e.g. failover-timeout."""
    text = (REPO_ROOT / "sentinel" / "sentinel.conf").read_text()
    return int(re.search(rf"^sentinel {name} \S+ (\d+)$", text, re.M).group(1))


def ha_downtime_limit_ms(kill_metrics: dict, one_election_ms: float = 15000) -> float:
    """How long an HA failover may keep writes away: one_election_ms when the first leader election succeeds,
    plus 2 x failover-timeout for each election Sentinel had to try again. Under load every sentinel may try at
    once and vote for itself (a split vote): Sentinel then waits 2 x failover-timeout before the next try (seen on
    compose: a 23.3 s downtime; master_kill's leader_elections_s records each try)."""
    retries = max(len(kill_metrics.get("leader_elections_s") or [0.0]) - 1, 0)
    return one_election_ms + retries * 2 * sentinel_setting("failover-timeout")


class CheckMetrics(dict):
    """A check's metrics from a saved JSON: a metric that is missing fails with the check's status and detail,
    so a test that reads one shows what the check said (a KeyError alone said nothing of the cause)."""

    def __init__(self, check: dict):
        super().__init__(check.get("metrics") or {})
        self.check = check

    def __missing__(self, key: str):
        check = self.check
        raise AssertionError(f"{check['scenario']} has no metric {key!r}; it said {check['status']}: "
                             f"{check['detail'][:1500]}")


class Checks(dict):
    """scenario -> its result, as saved; an absent check fails with the names of those present. history is the
    report's saved history (lib.history.History.to_dict: every process's ops and the events, times from the fault)."""

    history: dict

    def __missing__(self, name: str):
        raise AssertionError(f"no check {name!r} in the report; it has {sorted(self)}")

    def ops(self, process: str = "writer", f: str | None = "write", group: str | None = None) -> list[dict]:
        """The saved ops of one process (the harness's writer by default), of one f (None: all), of one group."""
        return [op for op in self.history["ops"] if op.get("process", "writer") == process
                and (f is None or op.get("f", "write") == f) and (group is None or op.get("group") == group)]

    @property
    def events(self) -> list[dict]:
        return self.history["events"]


def checks_in(report: dict) -> Checks:
    """A suite's saved report as {scenario: result}, each result's metrics a CheckMetrics."""
    checks = Checks({s["scenario"]: dict(s, metrics=CheckMetrics(s)) for s in report["scenarios"]})
    checks.history = report.get("history") or {"ops": [], "events": []}
    return checks


def checks_of(path: Path) -> Checks:
    """checks_in() of the JSON file a suite wrote."""
    return checks_in(json.loads(Path(path).read_text()))


def assert_recheck_agrees(script: str, path: Path) -> None:
    """--recheck of a suite's saved run (no server touched) recomputes every check from the saved test description
    and history alone: the same status, detail and metrics as the run saved, and the same exit code."""
    path = Path(path)
    again = path.with_name(f"{path.stem}-rechecked.json")
    proc = run_script(script, "--recheck", str(path), "--json", str(again), timeout=60)
    saved, rechecked = json.loads(path.read_text()), json.loads(again.read_text())
    assert "match the file" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]
    verdicts = [[(s["scenario"], s["status"], s["detail"], s["metrics"]) for s in body["scenarios"]]
                for body in (saved, rechecked)]
    assert verdicts[0] == verdicts[1]
    assert rechecked["test"] == saved["test"] and rechecked["history"] == saved["history"]
    statuses = {s["scenario"]: s["status"] for s in saved["scenarios"]}
    assert proc.returncode == (1 if "FAIL" in statuses.values() else 3 if "ERROR" in statuses.values() else 0), \
        (proc.returncode, statuses)


def run_script(script: str, *args: str, state_dir: Path | None = None, timeout: float = 240,
               env: dict | None = None) -> subprocess.CompletedProcess:
    """python app/SCRIPT ARGS from the repo root, as a user runs it (stdin closed, no tty)."""
    full_env = dict(os.environ, **(env or {}), COLUMNS="160")
    if state_dir is not None:
        full_env["VHC_STACK_STATE"] = str(state_dir)
    return subprocess.run([sys.executable, f"app/{script}", *args], cwd=REPO_ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
