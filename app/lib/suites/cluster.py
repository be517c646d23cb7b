"""The cluster suite, and what it shares with the cache suite (lib/suites/cache.py): one parser, the target,
the validated plan, the fault, undoing it, and deleting the run's keys.

The fault work lives here, not in the checks: the suite kills (or fails over) a primary, starts it again and
puts the roles back; lib/checks/cluster_checks.py only waits for and judges what it sees. Settings a fault
needs for the run (shutdown-on-sigterm, --min-replicas-to-write) are set by CONFIG SET and put back after
the rejoin (lib/clients/server_config.py).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import redis

from lib import events
from lib.checks.cluster_checks import (
    check_ask,
    check_connect,
    check_distribution,
    check_moved,
    check_placement,
    check_primary_failure,
    check_rejoin,
    check_replica_return,
    check_roles_put_back,
    failover_timeline,
)
from lib.checks.result import FAIL, OK, ScenarioResult, SuiteReport, run_scenario
from lib.checks.timeline import Timeline
from lib.clients.keyspace import delete_prefix
from lib.clients.server_config import ConfigChange
from lib.cluster_client import ClusterClient
from lib.errors import SetupError
from lib.faults.cluster_failover import ClusterManualFailover
from lib.faults.exec import ExecFault
from lib.faults.fault import (
    KILL_MODES,
    DockerKill,
    Fault,
    LocalKill,
    ManualKill,
    WaitNotice,
    choose_kill,
    restore_fault,
    undo_interrupted_fault,
)
from lib.faults.nodes import DockerNode, LocalNode, NodeControl, docker, node_control
from lib.faults.pause import Pause
from lib.faults.shard import kill_of, shard_loss
from lib.faults.sigterm import Terminate
from lib.ha_client import answers
from lib.history import History
from lib.launcher.discovery import running_stack, stack_serving
from lib.launcher.ownership import ownership, require_owned
from lib.report.cluster_report import distribution_table, kill_wait_view, topology_table
from lib.report.plot import plot_timeline
from lib.report.report import key_value_table
from lib.report.timeline import timeline_table
from lib.runs.cache_failover import CacheFailoverRun
from lib.runs.cluster_failover import (
    NO_FAILOVER,
    PROMOTION,
    SHARD_DOWN,
    ClusterFailoverRun,
    put_back_roles,
    run_cluster_failover,
    wait_links_up,
)
from lib.runs.final_read import read_back
from lib.suites.cli import add_failover_options, check_fault_options, parse_host_map
from lib.suites.skeleton import Output
from lib.topology.cluster_topology import Address, ClusterNode, Shard, shards_of
from lib.util import format_endpoint, key_namespace, parse_endpoint
from lib.waits import WaitTimeout

DESCRIPTION = "Cluster check: topology, slot placement, MOVED, ASK during a live migration, key spread, shard failover."
DEFAULT_NODE = ("127.0.0.1", 7000)
RESTART_TIMEOUT_S = 30.0  # a killed node the harness starts again (a person gets --manual-timeout)
FAILOVER_ERRORS = (WaitTimeout, redis.RedisError, redis.exceptions.RedisClusterException, RuntimeError)
R = TypeVar("R")
EXPECTS = {"replica-kill": NO_FAILOVER, "shard-loss": SHARD_DOWN}  # every other fault: a promotion
PINNED_FAULTS = ("pause", "partition")  # a writer stays with the old primary: what it acknowledges counts
ROLE_SWAPPING_FAULTS = ("coordinated", "pause", "sigterm", "partition")  # roles always put back after
SERVER_LOG_LINES = 30  # the old primary's log lines kept around a SIGTERM
# Faults the cache suite refuses (it measures HTTP hits through one promotion, not lost writes), and why.
NOT_FOR_CACHE = {
    "pause": "the cache suite does not account what the old primary acknowledges once it is resumed",
    "partition": "the cache suite does not account what the minority side acknowledges during the cut",
    "replica-kill": "no promotion follows it, and the cache suite measures HTTP hits through a promotion",
    "shard-loss": "no promotion is possible, and the cache suite measures HTTP hits through a promotion",
}


# ---- the target and the plan -------------------------------------------------------------------

@dataclass
class Target:
    seeds: list[Address]
    source: str


def resolve_target(args: argparse.Namespace) -> Target:
    """--node flags, then the local stack ($VHC_STACK_STATE, .stack/cluster), else 127.0.0.1:7000."""
    if args.node:
        return Target([parse_endpoint(n, example="127.0.0.1:7000") for n in args.node], "--node")
    if stack := running_stack("cluster"):
        return Target([stack.endpoint(n) for n in stack.running() if stack.service(n).kind == "server"],
                      f"local stack {stack.state_dir}")
    return Target([DEFAULT_NODE], "default (the compose port of node-7000)")


def build_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The options of cluster_test.py and cache_test.py, one parser for both."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--node", action="append", metavar="HOST:PORT",
                        help="a cluster node (repeat for more); default: the local stack, else 127.0.0.1:7000")
    add_failover_options(parser, fault_help=("auto: local launcher kill, else docker kill; manual: you kill a primary; "
                                             "graceful: CLUSTER FAILOVER on a replica; none: no failover"),
                         host_map_fallback="the first node's host")
    return parser


@dataclass
class Plan:
    """What the run will do, all of it validated before the first write."""

    nodes: list[ClusterNode]
    shards: list[Shard]
    version: str
    fault: Fault | None
    victim: Callable[[], Shard] | None
    history: History = field(default_factory=History)
    config: list[ConfigChange] = field(default_factory=list)  # CONFIG SET for the run, put back after the rejoin
    owned: bool = False  # the harness started the victim's shard (an exec fault's roles are then put back)


def prepare(args: argparse.Namespace, client: ClusterClient, target: Target, *, migrates: bool,
            notify: Callable[[WaitNotice], None] | None = None, suite: str = "cluster") -> Plan:
    """Read the cluster, check that every node is reachable, build the fault, and refuse what the harness
    may not do; nothing is written. migrates: the suite moves slots (cluster_test's moved and ask checks)."""
    nodes = client.nodes()
    shards = shards_of(nodes)
    if not shards:
        raise SetupError(f"{format_endpoint(*target.seeds[0])} is in cluster mode but no node owns slots: "
                         "the cluster is not formed (run cluster-init)")
    client.require_reachable([n for n in nodes if not n.failed])
    version = server_version(client, shards[0].primary)
    history = History()
    fault, victim = build_fault(args, client, shards, history, notify, suite=suite)
    if migrates and len(shards) > 1:
        require_owned([client.reachable(s.primary) for s in shards], allowed=args.allow_destructive,
                      action="migrate slots between the primaries (checks moved and ask)")
    if changed := changed_by(args.fault, fault, shards):
        require_owned([client.reachable(n) for n in changed], allowed=args.allow_destructive,
                      action=fault.description)
    config = run_config(args, client, nodes, shards)
    for change in config:
        require_owned(change.nodes, allowed=args.allow_destructive,
                      action=f"CONFIG SET {' '.join(f'{k} {v}' for k, v in change.settings.items())} for the run")
    owned = args.fault == "exec" and all(ownership(*client.reachable(n)).owned
                                         for n in (shards[0].primary, *shards[0].replicas))
    return Plan(nodes, shards, version, fault, victim, history, config, owned)


def run_config(args: argparse.Namespace, client: ClusterClient, nodes: list[ClusterNode], shards: list[Shard]
               ) -> list[ConfigChange]:
    """The settings the run needs, set when it starts and put back after the rejoin."""
    def connect(address: Address) -> redis.Redis:
        return client.node(address, timeout=5.0)

    changes = []
    if args.fault == "sigterm":
        changes.append(ConfigChange(connect, [client.reachable(shards[0].primary)],
                                    {"shutdown-on-sigterm": "failover"}))
    if args.min_replicas_to_write is not None:
        settings = {"min-replicas-to-write": str(args.min_replicas_to_write)}
        if args.min_replicas_max_lag is not None:
            settings["min-replicas-max-lag"] = str(args.min_replicas_max_lag)
        changes.append(ConfigChange(connect, [client.reachable(n) for n in nodes if not n.failed], settings))
    return changes


def server_version(client: ClusterClient, node: ClusterNode) -> str:
    try:
        with client.node(client.reachable(node)) as plain:
            server = plain.info("server")
    except redis.RedisError as exc:
        raise SetupError(f"{format_endpoint(*node.announced)} does not answer INFO: {exc}") from None
    return f"{server.get('server_name', 'redis')} {server.get('valkey_version') or server.get('redis_version')}"


@contextlib.contextmanager
def connected(args: argparse.Namespace, out: Output, *, migrates: bool, suite: str = "cluster"
              ) -> Iterator[tuple[ClusterClient, Target, Plan]]:
    """The head both cluster suites share: the target, its client and the plan; a SetupError writes nothing."""
    check_fault_options(args, suite)
    if suite == "cache":
        refuse_for_cache(args)
    host_map = parse_host_map(args.host_map, "node-7000=10.0.0.5")
    target = resolve_target(args)
    with ClusterClient(target.seeds, password=args.password, host_map=host_map) as client:
        yield client, target, prepare(args, client, target, migrates=migrates, notify=out.notify, suite=suite)


# ---- the fault, and undoing it -----------------------------------------------------------------

def build_fault(args: argparse.Namespace, client: ClusterClient, shards: list[Shard], history: History,
                notify: Callable[[WaitNotice], None] | None = None, *, suite: str = "cluster"
                ) -> tuple[Fault | None, Callable[[], Shard] | None]:
    """The fault, and a callable naming the shard it hits (asked after the fault).

    Built before any server is touched: a fault that cannot be done (no docker, no replica) is a
    setup error that costs nothing.
    """
    victim = shards[0]  # the primary of slot 0 (node-7000 in our stack)
    if args.fault == "none":
        return None, None
    if suite == "cache":
        refuse_for_cache(args)  # connected() refused already; build_fault is also called on its own
    if args.fault in ("graceful", "coordinated"):
        if not victim.replicas:
            raise SetupError(f"--fault {args.fault}: shard {victim.label} has no replica to promote")
        return (ClusterManualFailover(client, victim.replicas[0], coordinated=args.fault == "coordinated"),
                lambda: victim)
    if args.fault == "manual":
        def down_shard() -> Shard | None:
            return next((s for s in shards if not answers(client.reachable(s.primary), client.password, 0.3)), None)

        local = stack_serving("cluster", client.reachable(victim.primary))
        name = victim.primary.announced[0]
        hint, restart = ((f"python app/stack.py kill {local[1]}", "python app/stack.py start SERVICE") if local
                         else (f"docker kill {name}", "docker start CONTAINER"))
        fault = ManualKill("any primary", hint, lambda: down_shard() is not None,
                           lambda: down_shard() is None, kill_wait_view(shards, history),
                           timeout=args.manual_timeout, restart_hint=restart, notify=notify, role="")
        return fault, lambda: down_shard() or victim
    if args.fault in KILL_MODES:
        kill = choose_kill(args.fault, "cluster", victim.primary.announced, client.reachable(victim.primary))
        return kill, lambda: victim
    return matrix_fault(args, client, shards), lambda: victim


def refuse_for_cache(args: argparse.Namespace) -> None:
    """The faults and options that make no sense for the cache suite: one line, exit 2."""
    if args.fault in NOT_FOR_CACHE:
        raise SetupError(f"--fault {args.fault} does not apply to the cache suite: {NOT_FOR_CACHE[args.fault]}; "
                         f"use python app/cluster_test.py --fault {args.fault}")
    if args.min_replicas_to_write is not None:
        raise SetupError("--min-replicas-to-write does not apply to the cache suite: it counts cache hits, not "
                         "lost writes; use python app/cluster_test.py --min-replicas-to-write N")


def matrix_fault(args: argparse.Namespace, client: ClusterClient, shards: list[Shard]) -> Fault:
    """pause, sigterm, exec, replica-kill, shard-loss, partition on the primary of slot 0 (or its shard)."""
    victim = shards[0]
    if args.fault == "exec":
        return ExecFault(args.kill_cmd, args.restore_cmd)
    if args.fault == "partition":
        return partition_fault(client, shards)
    if args.fault == "shard-loss":
        return shard_loss(control(args, client, victim.primary), [control(args, client, r) for r in victim.replicas])
    if not victim.replicas:
        raise SetupError(f"--fault {args.fault}: shard {victim.label} has no replica "
                         f"{'to kill' if args.fault == 'replica-kill' else 'to promote'}")
    if args.fault == "replica-kill":
        return kill_of(control(args, client, victim.replicas[0]))
    primary = control(args, client, victim.primary)
    docker_way = isinstance(primary, DockerNode)
    if args.fault == "pause":
        return Pause(primary, how="docker pause" if docker_way else "SIGSTOP")
    if args.fault == "sigterm":
        return Terminate(primary, how="docker stop" if docker_way else "SIGTERM")
    raise SetupError(f"--fault {args.fault} does not apply to a cluster: use --fault exec or manual")


def control(args: argparse.Namespace, client: ClusterClient, node: ClusterNode) -> NodeControl:
    """The node's process (local stack) or container (compose); else why not, in one line."""
    try:
        return node_control("auto", "cluster", node.announced, client.reachable(node))
    except SetupError as exc:
        raise SetupError(f"--fault {args.fault} cannot reach the process of {format_endpoint(*node.announced)}: "
                         f"{exc}") from None


def partition_fault(client: ClusterClient, shards: list[Shard]) -> Fault:
    """The primary of slot 0 cut off from every other node: the majority of primaries and its own replicas."""
    try:  # written beside this suite (issue 13); refused until it exists
        partition = importlib.import_module("lib.faults.partition")
    except ImportError:
        raise SetupError("--fault partition is not available yet (lib/faults/partition.py is missing): use --fault "
                         "exec with your own cut and heal commands, or --fault pause") from None
    victim = shards[0].primary
    peers = [client.reachable(n) for s in shards for n in (s.primary, *s.replicas) if n.node_id != victim.node_id]
    return partition.cut_off("cluster", client.reachable(victim), peers, announced=victim.announced)


def changed_by(mode: str, fault: Fault | None, shards: list[Shard]) -> list[ClusterNode]:
    """The nodes whose process, role or links the fault changes (a manual fault is the user's own act: none)."""
    victim = shards[0]
    if isinstance(fault, ClusterManualFailover):
        return [victim.primary, fault.replica]
    if mode == "replica-kill":
        return victim.replicas[:1]
    if mode == "shard-loss":
        return [victim.primary, *victim.replicas]
    if mode == "partition":
        return [n for s in shards for n in (s.primary, *s.replicas)]
    if mode in ROLE_SWAPPING_FAULTS:  # the old primary stops or is demoted, and is made primary again after
        return [victim.primary, *victim.replicas[:1]]
    if isinstance(fault, LocalKill | DockerKill):
        return [victim.primary]
    return []


def puts_back_roles(args: argparse.Namespace, fault: Fault | None, owned: bool = False) -> bool:
    """A graceful failover and the fault matrix's failovers are undone always; a kill on servers the harness
    does not own, too; the failover of the user's --kill-cmd on servers the harness started (owned)."""
    return (isinstance(fault, ClusterManualFailover) or (args.fault in ROLE_SWAPPING_FAULTS and fault is not None)
            or (args.fault == "exec" and owned)
            or (args.allow_destructive and fault is not None and not fault.by_hand))


def restart_after_broken_run(fault: Fault, history: History, timeout: float = RESTART_TIMEOUT_S) -> str:
    """A run that broke after its kill still starts the node again: a fault must not outlive the run."""
    if history.first_event(events.FAULT) is None or not fault.can_restore:
        return ""
    try:
        restore_fault(fault, timeout)
    except (SetupError, WaitTimeout) as exc:
        return f"; the killed node was NOT started again: {exc}"
    return "; the killed node was started again"


def undoable(fault: Fault | None) -> bool:
    """The fault is still in effect and the harness can undo it (an exec fault only with --restore-cmd)."""
    if fault is None or not fault.pending_restore or not fault.can_restore:
        return False
    return not (isinstance(fault, ExecFault) and not fault.restore_cmd)


def restart_old_primary(fault: Fault, timeout: float) -> str | None:
    """Start the killed primary again (or wait for the person to); None when it runs, else why not."""
    if not (fault.can_restore or fault.by_hand):
        return None  # a graceful failover stopped nothing
    if fault.heals_in_run and not fault.pending_restore:
        return None  # the run healed it already (resumed, cut healed)
    if isinstance(fault, ExecFault) and not fault.restore_cmd:
        return None  # no --restore-cmd: the user's fault heals by itself (a pod its orchestrator restarts)
    try:
        if restore_fault(fault, timeout):
            return None
    except (WaitTimeout, SetupError) as exc:
        return f"was not started again: {exc}"
    return f"was not started again within {timeout:.0f}s"


def put_roles_back(client: ClusterClient, run: ClusterFailoverRun) -> str | None:
    """CLUSTER FAILOVER on the old primary, so the shard ends with the primary it started with; None when done."""
    try:
        put_back_roles(client, run.victim.primary, run.promoted, timeout=60)
    except (WaitTimeout, redis.RedisError) as exc:
        return str(exc)
    return None


def rejoin(client: ClusterClient, run: ClusterFailoverRun | None, fault: Fault | None, restart_timeout: float,
           *, put_back: bool = False) -> ScenarioResult:
    """The rejoin scenario: the suite starts the old primary again and check_rejoin judges its rejoin; with
    put_back the suite then makes it the primary again and check_roles_put_back judges that."""
    if run is None or run.promoted is None or fault is None:
        skipped = check_rejoin(client, None)
        if undoable(fault):  # a fault must not outlive its run
            problem = restart_old_primary(fault, restart_timeout)
            skipped.detail += f"; the fault was undone{f' only in part: {problem}' if problem else ''}"
        return skipped
    result = check_rejoin(client, run, restart_old_primary(fault, restart_timeout))
    if not put_back or result.status != OK:
        return result
    return check_roles_put_back(client, run, result, put_roles_back(client, run))


def rejoin_replica(client: ClusterClient, run: ClusterFailoverRun, fault: Fault | None,
                   restart_timeout: float) -> ScenarioResult:
    """After a replica kill or a shard loss: the suite starts what is still down, check_replica_return judges."""
    problem = restart_old_primary(fault, restart_timeout) if undoable(fault) else None
    return check_replica_return(client, run, problem)


def put_back_config(changes: list[ConfigChange], result: ScenarioResult) -> ScenarioResult:
    """The run's CONFIG SET put back (after the rejoin: a restarted node is reachable again); a FAIL if not."""
    applied = [change for change in changes if change.saved]
    if not applied:
        return result
    problems = [problem for change in applied for problem in change.restore()]
    names = sorted({name for change in applied for name in change.settings})
    if problems:
        return ScenarioResult(result.scenario, FAIL, f"{result.detail}; config NOT put back: {'; '.join(problems)}",
                              {**result.metrics, "config_put_back": False})
    return ScenarioResult(result.scenario, result.status, f"{result.detail}; {', '.join(names)} put back",
                          {**result.metrics, "config_put_back": True})


def server_log_reader(fault: Fault | None) -> Callable[[], list[str]] | None:
    """A reader of the SIGTERMed primary's log from now on (its shutdown says whether it handed over)."""
    node = fault.node if isinstance(fault, Terminate) else None
    if isinstance(node, LocalNode):
        path = Path(node.stack.service(node.name).log)
        offset = path.stat().st_size if path.exists() else 0

        def read_local() -> list[str]:
            with path.open(errors="replace") as log:
                log.seek(offset)
                return log.read().splitlines()[-SERVER_LOG_LINES:]

        return read_local
    if isinstance(node, DockerNode):
        since, name = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"), node.name
        return lambda: docker("logs", "--since", since, name).splitlines()[-SERVER_LOG_LINES:]
    return None


def full_coverage(client: ClusterClient, shards: list[Shard]) -> str:
    """cluster-require-full-coverage as a node that keeps running says it ("unknown" if CONFIG GET is refused)."""
    witness = shards[1].primary if len(shards) > 1 else shards[0].primary
    try:
        with client.node(client.reachable(witness)) as node:
            return str(node.config_get("cluster-require-full-coverage").get("cluster-require-full-coverage",
                                                                            "unknown"))
    except redis.RedisError:
        return "unknown"


def cleanup(client: ClusterClient, ns: str) -> str | None:
    """SCAN + UNLINK of this run's keys on every primary; None when done, else one line saying why not.

    ASKING before each UNLINK: a primary importing a slot holds keys of it that it does not own.
    """
    try:
        for shard in client.shards():
            with client.node(client.reachable(shard.primary), timeout=5.0) as node:
                delete_prefix(node, ns, cluster_node=True, asking=True)
    except (redis.RedisError, redis.exceptions.RedisClusterException, SetupError) as exc:
        return f"could not clean up keys {ns}*: {type(exc).__name__}: {first_line(str(exc))}"
    return None


def first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[:limit] + "..."


# ---- a prepared run, as both cluster suites have it --------------------------------------------

@dataclass
class ClusterTargetRun:
    """A prepared run on a cluster: the undo, cleanup, failover and rejoin steps both cluster suites share."""

    args: argparse.Namespace
    client: ClusterClient
    target: Target
    plan: Plan
    ns: str

    def undo_interrupted(self) -> list[str]:
        fault = self.plan.fault
        if isinstance(fault, ExecFault) and not fault.restore_cmd and fault.pending_restore:
            notes = [f"the fault came from --kill-cmd {fault.kill_cmd!r} and no --restore-cmd was given: heal it "
                     "yourself"]
        else:
            notes = [note for note in [undo_interrupted_fault(fault)] if note]
        for change in (c for c in self.plan.config if c.saved):  # a run interrupted after its CONFIG SET
            nodes = len(change.saved)
            notes += change.restore() or [f"put back {', '.join(change.settings)} on {nodes} node(s)"]
        return notes

    def cleanup(self) -> str | None:
        return cleanup(self.client, self.ns)

    def seed_nodes(self) -> str:
        return ", ".join(format_endpoint(*s) for s in self.target.seeds) + f"  (from {self.target.source})"

    def report(self, suite: str, **extra: Any) -> SuiteReport:
        return SuiteReport(suite, {"nodes": [format_endpoint(*s) for s in self.target.seeds],
                                   "server_version": self.plan.version, "shards": len(self.plan.shards),
                                   "fault": self.args.fault, **extra})

    def measured(self, scenario: str, failover: Callable[[], R], out: Output) -> tuple[R | None, ScenarioResult | None]:
        """The failover run, or (when it broke) scenario's FAIL, the killed node started again."""
        fault = self.plan.fault
        if fault is None:
            if self.args.plot:
                out.show("[yellow]--plot: no failover ran (--fault none), nothing to plot[/]")
            return None, None
        try:
            for change in self.plan.config:
                change.apply()
            return failover(), None
        except FAILOVER_ERRORS as exc:
            return None, ScenarioResult(scenario, FAIL, f"the failover run stopped: {type(exc).__name__}: {exc}"
                                        f"{restart_after_broken_run(fault, self.plan.history)}",
                                        {"fault": fault.description})

    def show_timeline(self, out: Output, timeline: Timeline, plot_title: str, table_title: str | None = None) -> None:
        out.show(timeline_table(timeline, table_title) if table_title else timeline_table(timeline))
        if self.args.plot:
            written = plot_timeline(timeline, self.args.plot, plot_title)
            out.show(f"timeline plot written to {written}")

    def rejoin(self, run: ClusterFailoverRun | CacheFailoverRun | None) -> ScenarioResult:
        """The old primary back as a replica (and, when the suite puts roles back, as the primary again)."""
        fault = self.plan.fault
        timeout = self.args.manual_timeout if fault and fault.by_hand else RESTART_TIMEOUT_S
        if isinstance(run, ClusterFailoverRun) and run.expect != PROMOTION:
            result = run_scenario("rejoin", lambda: rejoin_replica(self.client, run, fault, timeout))
        else:
            result = run_scenario("rejoin", lambda: rejoin(self.client, run, fault, timeout,
                                                           put_back=puts_back_roles(self.args, fault,
                                                                                    self.plan.owned)))
        return put_back_config(self.plan.config, result)


# ---- the cluster suite -------------------------------------------------------------------------

class ClusterSuiteRun(ClusterTargetRun):
    def checks(self, out: Output) -> SuiteReport:
        client, shards, ns = self.client, self.plan.shards, self.ns
        out.show(key_value_table("Target", [("seed nodes", self.seed_nodes()), ("server", self.plan.version),
                                            ("nodes", len(self.plan.nodes)), ("shards", len(shards))]))
        out.show(topology_table(client, shards))
        report = self.report("cluster")
        report.add(run_scenario("connect", lambda: check_connect(client, shards)))
        report.add(run_scenario("placement", lambda: check_placement(client, shards, ns)))
        report.add(run_scenario("moved", lambda: check_moved(client, shards, ns)))
        report.add(run_scenario("ask", lambda: check_ask(client, shards, ns)))
        distribution = report.add(run_scenario("distribution", lambda: check_distribution(client, shards, ns)))
        if "per_shard" in distribution.metrics:  # not when the check crashed
            out.show(distribution_table(shards, distribution.metrics))
        run, failed = self.measured("primary_failure", lambda: self.failover(out), out)
        skipped = "--fault none" if self.plan.fault is None else None
        report.add(failed or run_scenario("primary_failure", lambda: check_primary_failure(client, run, skipped,
                                                                                           self.args.fault)))
        report.add(self.rejoin(run))
        return report

    def failover(self, out: Output) -> ClusterFailoverRun:
        """The measured failover, its timeline shown (and plotted with --plot)."""
        plan, mode = self.plan, self.args.fault
        wait_links_up(self.client, plan.shards, timeout=60)
        settings = {"cluster-require-full-coverage": full_coverage(self.client, plan.shards)}
        for change in plan.config:
            settings.update(change.settings)
        server_log = server_log_reader(plan.fault)
        run = run_cluster_failover(self.client, plan.fault, plan.shards, plan.victim, self.ns,
                                   recovery_timeout=self.args.recovery_timeout, history=plan.history,
                                   progress=out.show, expect=EXPECTS.get(mode, PROMOTION),
                                   pinned=mode in PINNED_FAULTS, settings=settings)
        if server_log is not None:
            with contextlib.suppress(OSError, SetupError):
                run.server_log = server_log()
        self.show_timeline(out, failover_timeline(run), f"Cluster failover: {run.fault}")
        if run.victim is not None:  # recorded, so the verdict and --recheck judge by the same read
            with contextlib.suppress(*FAILOVER_ERRORS, SetupError):
                read_back(lambda keys: self.client.call(lambda rc: rc.mget_nonatomic(keys)), None, run.history,
                          where="through the cluster client")
        return run


class ClusterSuite:
    """Topology, placement, MOVED, ASK, key spread, then a shard failover and the old primary's rejoin."""

    name = "cluster"

    def build_parser(self) -> argparse.ArgumentParser:
        return build_parser("python app/cluster_test.py", DESCRIPTION)

    @contextlib.contextmanager
    def prepare(self, args: argparse.Namespace, out: Output) -> Iterator[ClusterSuiteRun]:
        with connected(args, out, migrates=True) as (client, target, plan):
            yield ClusterSuiteRun(args, client, target, plan, key_namespace("cluster"))
