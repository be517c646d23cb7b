"""The fault of a cluster suite, built (or refused) before any server is touched; shared with the cache suite."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

from lib.cluster_client import ClusterClient
from lib.errors import SetupError
from lib.faults.cluster_failover import ClusterManualFailover
from lib.faults.exec import ExecFault
from lib.faults.fault import KILL_MODES, Fault, ManualKill, WaitNotice, choose_kill
from lib.faults.nodes import DockerNode, NodeControl, node_control
from lib.faults.pause import Pause
from lib.faults.shard import kill_of, shard_loss
from lib.faults.sigterm import Terminate
from lib.ha_client import answers
from lib.history import History
from lib.launcher.discovery import stack_serving
from lib.report.cluster_report import kill_wait_view
from lib.topology.cluster_topology import ClusterNode, Shard

# Faults the cache suite refuses (it measures HTTP hits through one promotion, not lost writes), and why.
NOT_FOR_CACHE = {
    "pause": "the cache suite does not account what the old primary acknowledges once it is resumed",
    "partition": "the cache suite does not account what the minority side acknowledges during the cut",
    "replica-kill": "no promotion follows it, and the cache suite measures HTTP hits through a promotion",
    "shard-loss": "no promotion is possible, and the cache suite measures HTTP hits through a promotion",
}


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
    return node_control("auto", "cluster", node.announced, client.reachable(node), fault=args.fault)


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
