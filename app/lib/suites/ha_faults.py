"""The fault --fault asks for in the HA suite, built and checked before anything is touched: a SetupError
names what cannot be done here (and what works anywhere)."""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from lib.errors import SetupError
from lib.faults.compound import Compound
from lib.faults.exec import ExecFault
from lib.faults.fault import Fault, ManualKill, WaitNotice, choose_kill
from lib.faults.nodes import DockerNode, NodeControl, node_control
from lib.faults.pause import Pause
from lib.faults.quorum import kill_of, quorum_loss, require_quorum_loss_possible
from lib.faults.sentinel_failover import SentinelFailover
from lib.faults.sigterm import Terminate
from lib.ha_client import Address, HAClient, answers
from lib.launcher.discovery import stack_serving
from lib.runs.ha_record import RunPlan
from lib.util import format_endpoint

# A watch for a failover that must not happen lasts twice the detection time plus this: from +odown to
# +switch-master took 1-2 s here, so a failover that was going to happen would have happened within it.
FAILOVER_ALLOWANCE_S = 3.0


@dataclass
class FaultChoice:
    """The fault --fault asks for, what the run must do around it, and the servers it acts on."""

    fault: Fault | None
    plan: RunPlan = field(default_factory=RunPlan)
    touches: list[Address] | None = None  # for the ownership check; None: the master and the sentinels


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
    return node_control("auto", "ha", announced, reachable, fault=fault)


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
