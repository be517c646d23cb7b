"""The HA suite: find the master through the sentinels, fail it over, and check what a client saw.

HASuite parses and prepares (target, reachability, fault, ownership: nothing written yet); HARun is one
prepared run: the checks in order, the fault put back before replica_sync judges the rejoin, and what an
interrupt must undo. Verdicts are lib/checks/ha_checks.py; tables and progress go through the Output.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from lib.checks.ha_checks import (
    check_consistency,
    check_crud,
    check_master_kill,
    check_new_master,
    check_reconnect,
    check_replica_sync,
    check_roles_restored,
    failover_timeline,
    roles_note,
)
from lib.checks.result import ScenarioResult, SuiteReport, run_scenario
from lib.clients.keyspace import delete_prefix
from lib.clients.server_config import ConfigChange
from lib.errors import SetupError
from lib.faults.compound import Compound
from lib.faults.exec import ExecFault
from lib.faults.fault import (
    Fault,
    LocalKill,
    ManualKill,
    WaitNotice,
    choose_kill,
    restore_fault,
    undo_interrupted_fault,
)
from lib.faults.nodes import DockerNode, NodeControl, node_control
from lib.faults.pause import Pause
from lib.faults.quorum import kill_of, quorum_loss, require_quorum_loss_possible
from lib.faults.sentinel_failover import SentinelFailover
from lib.faults.sigterm import Terminate
from lib.ha_client import Address, HAClient, answers
from lib.history import History
from lib.launcher.discovery import running_stack, stack_serving
from lib.launcher.local_stack import LocalStack
from lib.launcher.ownership import ownership, require_owned
from lib.report.ha_report import manual_kill_view
from lib.report.plot import plot_timeline
from lib.report.report import key_value_table
from lib.report.timeline import timeline_table
from lib.runs.final_read import read_back
from lib.runs.ha_failover import (
    FailoverRun,
    RunPlan,
    faster_rejoin,
    put_back_master,
    run_failover,
    wait_replicas_synced,
)
from lib.suites.cli import add_failover_options, check_fault_options, parse_host_map
from lib.suites.skeleton import Output
from lib.util import format_endpoint, key_namespace, parse_endpoint
from lib.waits import WaitTimeout, wait_until

SENTINELS_ENV = "VHC_SENTINELS"
DEFAULT_SENTINELS = [("127.0.0.1", 26379), ("127.0.0.1", 26380), ("127.0.0.1", 26381)]
DESCRIPTION = "Sentinel HA check: find the master through the sentinels, fail it over, measure what a client sees."
# A watch for a failover that must not happen lasts twice the detection time plus this: from +odown to
# +switch-master took 1-2 s here, so a failover that was going to happen would have happened within it.
FAILOVER_ALLOWANCE_S = 3.0


@dataclass
class Target:
    sentinels: list[Address]
    source: str
    stack: LocalStack | None = None


@dataclass
class Session:
    """What this run changed and must undo however it ends (Ctrl-C too): keys, a fault, swapped roles."""

    namespace: str
    wrote: bool = False  # False: nothing to clean up (an unreachable target must cost one line, not a block)
    fault: Fault | None = None
    owned: bool = True  # the harness started the target (else the roles are put back after a failover)
    original_master: Address | None = None  # as the sentinels announced it before the run
    roles_put_back: bool = False
    config: list[ConfigChange] = field(default_factory=list)  # CONFIG SET for the run, put back however it ends


@dataclass
class FaultChoice:
    """The fault --fault asks for, what the run must do around it, and the servers it acts on."""

    fault: Fault | None
    plan: RunPlan = field(default_factory=RunPlan)
    touches: list[Address] | None = None  # for the ownership check; None: the master and the sentinels


class HASuite:
    name = "ha"

    def build_parser(self) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog="python app/ha_test.py", description=DESCRIPTION)
        parser.add_argument("--sentinel", action="append", metavar="HOST:PORT",
                            help=f"a sentinel (repeat for each); default: ${SENTINELS_ENV}, the local stack, "
                                 "else 127.0.0.1:26379-26381")
        parser.add_argument("--master-name", default="myvalkey")
        parser.add_argument("--sentinel-password", help="password of the sentinels, if they have one")
        add_failover_options(parser, fault_help=("auto: local launcher kill, else docker kill; manual: you kill it; "
                                                 "graceful: SENTINEL FAILOVER; coordinated: SENTINEL FAILOVER "
                                                 "COORDINATED; pause: SIGSTOP, resumed after the failover; "
                                                 "sigterm; exec: --kill-cmd/--restore-cmd; replica-kill; "
                                                 "quorum-loss: 2 of 3 sentinels stopped, then the master "
                                                 "killed; partition; none: no failover"),
                             host_map_fallback="the sentinel's host")
        return parser

    @contextlib.contextmanager
    def prepare(self, args: argparse.Namespace, out: Output) -> Iterator[HARun]:
        check_fault_options(args, "ha")
        host_map = parse_host_map(args.host_map, "valkey-master=10.0.0.5")
        target = resolve_target(args)
        ha = HAClient(target.sentinels, args.master_name, password=args.password,
                      sentinel_password=args.sentinel_password, host_map=host_map)
        try:
            yield prepare_run(args, ha, target, Session(key_namespace("ha")), out)
        finally:
            ha.close()


def resolve_target(args: argparse.Namespace) -> Target:
    """Sentinel endpoints: --sentinel flags, then $VHC_SENTINELS, then a local stack's record, then defaults."""
    if args.sentinel:
        return Target([parse_endpoint(s, example="127.0.0.1:26379") for s in args.sentinel], "--sentinel")
    if env := os.environ.get(SENTINELS_ENV):
        sentinels = [parse_endpoint(s, example="127.0.0.1:26379") for s in env.split(",") if s.strip()]
        return Target(sentinels, f"${SENTINELS_ENV}")
    if stack := running_stack("ha"):
        return Target(stack.endpoints("sentinel"), f"local stack {stack.state_dir}", stack)
    return Target(list(DEFAULT_SENTINELS), "defaults (the compose ports)")


def build_fault(args: argparse.Namespace, ha: HAClient, announced: Address, reachable: Address,
                history_view: Callable[[float], Any],
                notify: Callable[[WaitNotice], None] | None = None) -> FaultChoice:
    """The fault --fault asks for, checked (a SetupError if it cannot be done here); nothing is touched yet."""
    if args.fault == "none":
        return FaultChoice(None)
    if args.fault == "graceful":
        return FaultChoice(SentinelFailover(ha))
    if args.fault == "coordinated":  # a local stack's server logs tell which path the failover took
        local = stack_serving("ha", reachable)
        return FaultChoice(SentinelFailover(ha, coordinated=True, stack=local[0] if local else None))
    if args.fault == "manual":
        local = stack_serving("ha", reachable)
        by_name = not announced[0][0].isdigit()
        hint, restart = ((f"python app/stack.py kill {local[1]}", f"python app/stack.py start {local[1]}") if local
                         else (f"docker kill {announced[0]}", f"docker start {announced[0]}") if by_name
                         else ("kill the master process", "start it again"))

        def master_answers() -> bool:
            return answers(reachable, ha.password, timeout=0.3)

        return FaultChoice(ManualKill(format_endpoint(*announced), hint, lambda: not master_answers(), master_answers,
                                      history_view, timeout=args.manual_timeout, restart_hint=restart, notify=notify))
    if args.fault in ("pause", "sigterm"):
        node = _node_control(args.fault, announced, reachable)
        docker = isinstance(node, DockerNode)
        if args.fault == "pause":  # resumed by the run after +switch-master, a writer kept on it meanwhile
            return FaultChoice(Pause(node, "docker pause" if docker else "SIGSTOP"), RunPlan(pin_old_master=reachable))
        return FaultChoice(Terminate(node, "docker stop" if docker else "SIGTERM"))
    if args.fault == "exec":
        return FaultChoice(ExecFault(args.kill_cmd, args.restore_cmd), touches=[])  # the person's own commands
    if args.fault == "replica-kill":
        return replica_kill(ha)
    if args.fault == "quorum-loss":
        return quorum_loss_choice(ha, announced, reachable)
    if args.fault == "partition":
        return partition_choice(ha, announced, reachable)
    return FaultChoice(choose_kill(args.fault, "ha", announced, reachable))


def _node_control(fault: str, announced: Address, reachable: Address) -> NodeControl:
    """The node's process (local stack) or container (compose); else exit 2 naming what works anywhere."""
    try:
        return node_control("auto", "ha", announced, reachable)
    except SetupError as exc:
        raise SetupError(f"--fault {fault} cannot reach the process of {format_endpoint(*announced)}: {exc}") from None


def sentinel_master(ha: HAClient) -> dict:
    """SENTINEL MASTER from the first sentinel that answers: quorum, down-after, how many sentinels it knows."""
    errors = []
    for address in ha.sentinel_addresses:
        client = ha.node(address, sentinel=True)
        try:
            return client.sentinel_master(ha.master_name)
        except redis.RedisError as exc:
            errors.append(f"{format_endpoint(*address)}: {exc}")
        finally:
            client.close()
    raise SetupError(f"no sentinel answered SENTINEL MASTER {ha.master_name}: {'; '.join(errors)}")


def watch_seconds(state: dict) -> float:
    """Longer than a normal failover would take: twice the detection time plus the failover itself."""
    return 2 * int(state["down-after-milliseconds"]) / 1000 + FAILOVER_ALLOWANCE_S


def announced_replicas(ha: HAClient) -> list[Address]:
    """The master's replicas as the sentinels announce them (the names a container is found by)."""
    client = ha.node(ha.sentinel_addresses[0], sentinel=True)
    try:
        replicas = client.sentinel_slaves(ha.master_name)
    finally:
        client.close()
    return sorted((r["ip"], int(r["port"])) for r in replicas if not r.get("is_sdown"))


def replica_kill(ha: HAClient) -> FaultChoice:
    replicas = announced_replicas(ha)
    if not replicas:
        raise SetupError("--fault replica-kill: the sentinels know no healthy replica of the master")
    replica = replicas[0]
    node = _node_control("replica-kill", replica, ha.remap(replica))
    plan = RunPlan(expect_failover=False, watch_s=watch_seconds(sentinel_master(ha)), victim=replica,
                   why_no_failover="only a replica was killed")
    return FaultChoice(Compound([kill_of(node)], label="replica kill"), plan,
                       touches=[ha.remap(replica), *ha.sentinel_addresses])


def quorum_loss_choice(ha: HAClient, announced: Address, reachable: Address) -> FaultChoice:
    """Stop enough sentinels (the last ones given) that no failover can happen, then kill the master."""
    state = sentinel_master(ha)
    known, quorum = int(state["num-other-sentinels"]) + 1, int(state["quorum"])
    stop = require_quorum_loss_possible(ha.sentinel_addresses, known, quorum)
    sentinels = [_node_control("quorum-loss", a, a) for a in ha.sentinel_addresses[-stop:]]
    fault = quorum_loss(sentinels, _node_control("quorum-loss", announced, reachable))

    def start_sentinels() -> str:
        back = fault.heal_sentinels(30)
        return f"{stop} sentinel(s) started again" if back else f"not all of the {stop} sentinels came back"

    why = f"quorum unreachable ({stop} of {known} sentinels stopped, quorum {quorum})"
    return FaultChoice(fault, RunPlan(watch_s=watch_seconds(state), heal_after_watch=start_sentinels,
                                      why_no_failover=why))


def partition_choice(ha: HAClient, announced: Address, reachable: Address) -> FaultChoice:
    """The master cut off from its replicas and the sentinels, healed by the run after +switch-master."""
    if importlib.util.find_spec("lib.faults.partition") is None:
        raise SetupError("--fault partition is not available yet (no lib/faults/partition.py): use --fault exec "
                         "--kill-cmd CMD --restore-cmd CMD with your own network cut, or --fault pause")
    from lib.faults import partition

    peers = [*(ha.remap(r) for r in announced_replicas(ha)), *ha.sentinel_addresses]
    fault = partition.cut_off("ha", reachable, peers, announced=announced)
    return FaultChoice(fault, RunPlan(pin_old_master=reachable))


def require_ownership(args: argparse.Namespace, ha: HAClient, fault: Fault | None, reachable: Address,
                      touches: list[Address] | None = None) -> bool:
    """Refuse a fault on servers the harness did not start unless --allow-destructive; True if they are ours.

    A fault done by hand is the person's action, and --fault none changes nothing but our own keys; so are
    --kill-cmd and --restore-cmd (touches=[]): only whether the servers are ours is asked.
    Checked before any write, so a refusal leaves the target exactly as it was.
    """
    if fault is None or fault.by_hand:
        return True
    addresses = [reachable, *ha.sentinel_addresses] if touches is None else touches
    if not addresses:
        return all(ownership(*a).owned for a in [reachable, *ha.sentinel_addresses])
    found = require_owned(addresses, allowed=args.allow_destructive,
                          action=f"run {fault.description} against {format_endpoint(*reachable)}")
    return all(o.owned for o in found)


def config_for_run(args: argparse.Namespace, ha: HAClient, reachable: Address) -> list[ConfigChange]:
    """--min-replicas-to-write on every data node, shutdown-on-sigterm on the master: refused (exit 2) on servers
    the harness did not start unless --allow-destructive; applied just before the fault, put back after."""
    changes = []
    if args.min_replicas_to_write is not None:
        nodes = [reachable, *ha.sentinel.discover_slaves(ha.master_name)]
        settings = {"min-replicas-to-write": str(args.min_replicas_to_write)}
        if args.min_replicas_max_lag is not None:
            settings["min-replicas-max-lag"] = str(args.min_replicas_max_lag)
        require_owned(nodes, allowed=args.allow_destructive,
                      action=f"CONFIG SET {' '.join(f'{k} {v}' for k, v in settings.items())} on "
                             f"{', '.join(format_endpoint(*n) for n in nodes)}")
        changes.append(ConfigChange(ha.node, nodes, settings))
    if args.fault == "sigterm":  # the fault's ownership check covers the master
        changes.append(ConfigChange(ha.node, [reachable], {"shutdown-on-sigterm": "failover"}))
    return changes


def server_info(ha: HAClient, address: Address) -> dict:
    node = ha.node(address)
    try:
        return node.info("server")
    finally:
        node.close()


def prepare_run(args: argparse.Namespace, ha: HAClient, target: Target, session: Session, out: Output) -> HARun:
    """Reach the master, build the fault, check ownership: a SetupError here has written nothing."""
    reachable = ha.check_reachable()
    announced = ha.announced_master()
    server = server_info(ha, reachable)
    history = History()
    choice = build_fault(args, ha, announced, reachable, manual_kill_view(ha, history), out.notify)
    fault = choice.fault
    session.owned = require_ownership(args, ha, fault, reachable, choice.touches)  # refuses before any write
    config = config_for_run(args, ha, reachable) if fault is not None else []
    session.fault, session.original_master = fault, announced
    return HARun(args, ha, target, session, history, announced, reachable, server, choice.plan, config)


@dataclass
class HARun:
    """One prepared HA run (lib/suites/skeleton.SuiteRun)."""

    args: argparse.Namespace
    ha: HAClient
    target: Target
    session: Session
    history: History  # the writer's, shared with a manual kill's live view
    announced: Address  # the master as the sentinels announced it
    reachable: Address  # where it answers from here
    server: dict  # its INFO server
    plan: RunPlan = field(default_factory=RunPlan)  # what the run does around the fault
    config: list[ConfigChange] = field(default_factory=list)  # applied just before the fault (session.config)

    def checks(self, out: Output) -> SuiteReport:
        args, ha, session, fault = self.args, self.ha, self.session, self.session.fault
        version = self.server.get("valkey_version") or self.server.get("redis_version")
        out.show(self._target_table(version))
        report = SuiteReport("ha", {"sentinels": [format_endpoint(*s) for s in self.target.sentinels],
                                    "master_name": args.master_name, "master": format_endpoint(*self.announced),
                                    "server_version": version, "fault": args.fault, "harness_started": session.owned})
        session.wrote = True  # from here on, keys under the namespace may exist
        report.add(run_scenario("crud", lambda: check_crud(ha, session.namespace)))
        run, skipped = self._failover(out)
        report.add(run_scenario("master_kill", lambda: check_master_kill(run, skipped)))
        report.add(run_scenario("new_master", lambda: check_new_master(ha, run)))
        report.add(run_scenario("reconnect", lambda: check_reconnect(run, skipped, ha.switches_followed)))
        report.add(run_scenario("consistency", lambda: check_consistency(ha, run, skipped)))
        heal_by_hand = self._heal_by_hand(out)
        restore_timeout = args.manual_timeout if fault and (fault.by_hand or heal_by_hand) else 30
        report.add(run_scenario("replica_sync", lambda: replica_sync_scenario(
            ha, run, fault, restore_timeout, fast_rejoin=fast_rejoin(fault, session.owned), heal_by_hand=heal_by_hand)))
        if problems := put_config_back(session):
            out.warn("; ".join(problems))
        if run is not None and not session.owned and isinstance(fault, SentinelFailover):
            report.add(run_scenario("roles_restored", lambda: roles_restored_scenario(ha, session)))
        elif run is not None and (note := roles_note(ha, None if session.roles_put_back else session.original_master,
                                                     session.owned)):
            out.show(note)
        return report

    def _target_table(self, version: str | None) -> Any:
        reached = (f" (reached at {format_endpoint(*self.reachable)})" if self.reachable != self.announced else "")
        return key_value_table("Target", [
            ("sentinels", ", ".join(format_endpoint(*s) for s in self.target.sentinels)
             + f"  (from {self.target.source})"),
            ("master name", self.args.master_name),
            ("master", format_endpoint(*self.announced) + reached),
            ("server", f"{self.server.get('server_name', 'redis')} {version}"),
        ])

    def _failover(self, out: Output) -> tuple[FailoverRun | None, str | None]:
        """The measured failover, its timeline shown (and plotted); (None, why) when --fault none."""
        args, fault = self.args, self.session.fault
        if fault is None:
            if args.plot:
                out.warn("--plot: no failover ran (--fault none), nothing to plot")
            return None, "--fault none"
        replicas = wait_replicas_synced(self.ha, timeout=60)
        out.show(f"{len(replicas)} replica(s) in sync; starting the writer, the 5 ms probe and the "
                 f"sentinel event recorder")
        settings = self._apply_config(out)
        run = run_failover(self.ha, fault, self.session.namespace, recovery_timeout=args.recovery_timeout,
                           history=self.history, progress=out.show, plan=self.plan, settings=settings)
        if isinstance(fault, SentinelFailover) and fault.coordinated:
            run.extra.update(fault.path_evidence(run.old_master, run.new_master))
        if run.recovered_at is not None:
            self._final_read(run)
        timeline = failover_timeline(run)
        out.show(timeline_table(timeline))
        if args.plot:
            written = plot_timeline(timeline, args.plot, f"HA failover: {run.fault}")
            out.show(f"timeline plot written to {written}")
        return run, None

    def _final_read(self, run: FailoverRun) -> None:
        """Read back every key the writers wrote, on the master the sentinels agree on, into their histories:
        the consistency verdict (and --recheck) judges by this read alone."""
        address = self.ha.master_address()
        master = self.ha.node(address)
        try:
            where = f"on {format_endpoint(*address)}"
            for history in (run.history, run.pinned):
                if history is not None:
                    read_back(master.mget, None, history, where=where)
        finally:
            master.close()
        run.extra["final_read_on"] = format_endpoint(*address)

    def _apply_config(self, out: Output) -> dict[str, str]:
        """CONFIG SET for the run (recorded in the session first, so that however the run ends it is put back)."""
        settings: dict[str, str] = {}
        for change in self.config:
            self.session.config.append(change)
            change.apply()
            settings.update(change.settings)
            out.show(f"CONFIG SET {' '.join(f'{k} {v}' for k, v in change.settings.items())} on "
                     f"{', '.join(format_endpoint(*n) for n in change.nodes)} for this run (put back afterwards)")
        return settings

    def _heal_by_hand(self, out: Output) -> Callable[[float], bool] | None:
        """--fault exec without --restore-cmd: wait for the person to heal it, as after --fault manual."""
        fault = self.session.fault
        if not isinstance(fault, ExecFault) or fault.restore_cmd:
            return None
        target, reachable, password = format_endpoint(*self.announced), self.reachable, self.ha.password

        def healed(timeout: float) -> bool:
            out.notify(WaitNotice("restart", f"now heal the fault of --kill-cmd: {target} must answer again "
                                  f"(no --restore-cmd was given); waiting up to {timeout:.0f}s", timeout))
            try:
                wait_until(lambda: (answers(reachable, password, timeout=0.3), "not answering yet"), timeout=timeout,
                           what=f"{target} to answer again")
            except WaitTimeout:
                return False
            return True

        return healed

    def undo_interrupted(self) -> list[str]:
        return undo_interrupted(self.ha, self.session)

    def cleanup(self) -> str | None:
        problems = put_config_back(self.session)
        if self.session.wrote and (problem := cleanup(self.ha, self.session.namespace)):
            problems.append(problem)
        return "; ".join(problems) or None


# ---- putting back what the fault did, before the checks that judge it -------------------------

def put_fault_back(fault: Fault, timeout: float, heal_by_hand: Callable[[float], bool] | None = None) -> bool:
    """Start the killed node again (or wait for the person to); True for a fault that stopped nothing."""
    if heal_by_hand is not None:
        healed = heal_by_hand(timeout)
        fault.pending_restore = fault.pending_restore and not healed
        return healed
    return restore_fault(fault, timeout) if (fault.can_restore or fault.by_hand) else True


def fast_rejoin(fault: Fault | None, owned: bool) -> bool:
    """Shorten the sentinels' timers while the stopped node rejoins: after a local kill, and after the newer
    faults that stop a node, on servers the harness started (the failover itself was measured with defaults)."""
    return isinstance(fault, LocalKill) or (owned and isinstance(fault, Terminate | ExecFault | Compound))


def put_config_back(session: Session) -> list[str]:
    """Every CONFIG SET of the run put back; one line per node where that failed (it is tried again later).

    Put back in the config file too: a sentinel that reconfigures a server during the failover sends it
    CONFIG REWRITE, which saved the run's value in the file (measured: a replica restarted in a later run
    came back with min-replicas-to-write 1). A server without a writable config file just says so.
    """
    problems = []
    for change in session.config:
        before = set(change.saved)
        problems += change.restore()
        problems += [problem for address in before - set(change.saved)
                     if (problem := rewrite_config(change.connect, address))]
    session.config = [change for change in session.config if change.saved]
    return problems


def rewrite_config(connect: Callable[[Address], redis.Redis], address: Address) -> str | None:
    node = connect(address)
    try:
        node.execute_command("CONFIG REWRITE")
    except redis.ResponseError:
        pass  # no config file, or a read-only one (compose mounts valkey.conf :ro): nothing was saved there
    except redis.RedisError as exc:
        return f"{format_endpoint(*address)}: put back, but CONFIG REWRITE failed: {one_line(exc)}"
    finally:
        node.close()
    return None


def replica_sync_scenario(ha: HAClient, run: FailoverRun | None, fault: Fault | None,
                          restore_timeout: float, *, fast_rejoin: bool | None = None,
                          heal_by_hand: Callable[[float], bool] | None = None) -> ScenarioResult:
    """Start the old master again, then let check_replica_sync judge its rejoin and the replicas' sync.

    After a local kill the sentinels' timers are shortened meanwhile (faster_rejoin): only the rejoin is
    watched with them, the failover was measured with the defaults.
    """
    if run is None or fault is None:
        return check_replica_sync(ha, run, None, restore_timeout)
    shorten = isinstance(fault, LocalKill) if fast_rejoin is None else fast_rejoin
    with faster_rejoin(ha) if shorten else contextlib.nullcontext():
        restarted = put_fault_back(fault, restore_timeout, heal_by_hand)
        return check_replica_sync(ha, run, restarted, restore_timeout)


def roles_restored_scenario(ha: HAClient, session: Session) -> ScenarioResult:
    """Put the original master back (servers the harness did not start), then judge whether it is master."""
    original = session.original_master
    assert original is not None
    put_back = put_back_master(ha, original)
    session.roles_put_back = put_back.done
    return check_roles_restored(original, put_back)


# ---- cleanup, and undoing an interrupted run -------------------------------------------------

def cleanup(ha: HAClient, ns: str) -> str | None:
    """SCAN + DEL of this run's keys only, on whichever node is master now; a failure is one line."""
    try:
        master = ha.node(ha.master_address())
        try:
            delete_prefix(master, ns)
        finally:
            master.close()
    except redis.RedisError as exc:
        return f"could not clean up keys {ns}*: {one_line(exc)}"
    return None


def one_line(exc: BaseException, limit: int = 160) -> str:
    text = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return text if len(text) <= limit else text[:limit - 1] + "…"


def undo_interrupted(ha: HAClient, session: Session, timeout: float = 60.0) -> list[str]:
    """After Ctrl-C / SIGTERM: start a killed master again, put back roles we swapped on someone
    else's servers, then delete our keys once a master is stable. Returns one line per step."""
    notes = []
    fault = session.fault
    if isinstance(fault, ExecFault) and not fault.restore_cmd and fault.pending_restore:
        notes.append(f"the fault came from --kill-cmd {fault.kill_cmd!r} and no --restore-cmd was given: "
                     "heal it yourself")
    elif note := undo_interrupted_fault(fault, timeout):
        notes.append(note)
    if session.config:
        names = sorted({name for change in session.config for name in change.settings})
        notes += put_config_back(session) or [f"put back: {', '.join(names)}"]
    if (isinstance(fault, SentinelFailover) and not session.owned and session.original_master is not None
            and not session.roles_put_back):
        put_back = put_back_master(ha, session.original_master)
        notes.append(put_back.detail)
    if session.wrote:
        with faster_rejoin(ha) if fast_rejoin(fault, session.owned) else contextlib.nullcontext():
            notes.append(_cleanup_when_stable(ha, session, timeout))
    return notes


def failover_flags(ha: HAClient) -> dict[str, str]:
    """The sentinels that see the master down or a failover under way, with their flags for it."""
    busy = {}
    for address in ha.sentinel_addresses:
        client = ha.node(address, sentinel=True)
        try:
            flags = str(client.sentinel_master(ha.master_name).get("flags", ""))
        except redis.RedisError as exc:
            flags = f"error: {type(exc).__name__}"
        finally:
            client.close()
        if any(flag in flags for flag in ("s_down", "o_down", "failover_in_progress", "error")):
            busy[format_endpoint(*address)] = flags
    return busy


def _cleanup_when_stable(ha: HAClient, session: Session, timeout: float) -> str:
    """Delete our keys on the master once the sentinels agree on it, no failover is under way, and every
    node that answers (the one we may have restarted too) replicates from it, synced: deleted on a node
    that is then demoted and resynced, or before a replica's full sync, they would come back."""
    restarted = session.original_master

    def stable() -> tuple[bool, str]:
        views = ha.sentinel_views()
        if len(set(views.values())) != 1 or next(iter(views.values())).startswith(("error", "unknown")):
            return False, f"sentinels say {views}"
        if busy := failover_flags(ha):
            return False, f"sentinels report {busy}"
        master = ha.remap(parse_endpoint(next(iter(views.values()))))
        replicas = set(ha.sentinel.discover_slaves(ha.master_name)) - {master}
        if restarted and ha.remap(restarted) != master and answers(ha.remap(restarted), ha.password):
            replicas.add(ha.remap(restarted))  # one killed by hand may still be down
        roles = {address: _replication(ha, address) for address in (master, *replicas)}
        synced = roles[master][0] == "master" and all(
            role == "slave" and port == master[1] and link == "up" and not syncing
            for address, (role, port, link, syncing) in roles.items() if address != master)
        return synced, f"sentinels agree on {format_endpoint(*master)}; (role, master port, link, syncing): {roles}"

    try:
        wait_until(stable, timeout=timeout, what="a stable master to delete this run's keys on")
    except WaitTimeout as exc:
        return f"could not clean up keys {session.namespace}*: {one_line(exc)}"
    session.wrote = False  # the skeleton's final cleanup need not do it again
    return cleanup(ha, session.namespace) or f"deleted this run's keys {session.namespace}*"


def _replication(ha: HAClient, address: Address) -> tuple[str, int, str, bool]:
    node = ha.node(address)
    try:
        info = node.info("replication")
    finally:
        node.close()
    return (info.get("role", "?"), int(info.get("master_port", 0)), info.get("master_link_status", "-"),
            bool(int(info.get("master_sync_in_progress", 0))))
