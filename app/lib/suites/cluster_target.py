"""The target and the plan both cluster suites share: seed nodes, one parser, all validated before the first write."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import redis

from lib.clients.server_config import ConfigChange
from lib.cluster_client import ClusterClient
from lib.description import Loop, TestDescription
from lib.errors import SetupError
from lib.faults.fault import Fault, WaitNotice
from lib.history import PINNED, History
from lib.launcher.discovery import running_stack
from lib.launcher.ownership import ownership, require_owned
from lib.suites.cli import add_failover_options, check_fault_options, describe, fault_help
from lib.suites.cluster_faults import build_fault
from lib.suites.skeleton import Output
from lib.topology.cluster_topology import Address, ClusterNode, Shard, shards_of
from lib.util import format_endpoint, parse_endpoint

DEFAULT_NODE = ("127.0.0.1", 7000)
PINNED_PAUSE_S = 0.002  # the writer kept on the old primary, when the fault pins one


@dataclass
class Target:
    seeds: list[Address]
    source: str


def resolve_target(test: TestDescription) -> Target:
    """--node flags, then the local stack ($VHC_STACK_STATE, .stack/cluster), else 127.0.0.1:7000."""
    if test.endpoints:
        return Target([parse_endpoint(n, example="127.0.0.1:7000") for n in test.endpoints], "--node")
    if stack := running_stack("cluster"):
        return Target([stack.endpoint(n) for n in stack.running() if stack.service(n).kind == "server"],
                      f"local stack {stack.state_dir}")
    return Target([DEFAULT_NODE], "default (the compose port of node-7000)")


def build_parser(prog: str, description: str, suite: str, argv: list[str] | None) -> argparse.ArgumentParser:
    """The options of cluster_test.py and cache_test.py, one parser for both."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--node", action="append", metavar="HOST:PORT",
                        help="a cluster node (repeat for more); default: the local stack, else 127.0.0.1:7000")
    add_failover_options(parser, fault_help=fault_help("cluster", suite, argv),
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
    owned: bool = False  # the harness started the victim's shard (the fault says whether roles are then put back)


def prepare(test: TestDescription, client: ClusterClient, target: Target, *, migrates: bool,
            notify: Callable[[WaitNotice], None] | None = None) -> Plan:
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
    fault, victim = build_fault(test, client, shards, history, notify)
    if migrates and len(shards) > 1:
        require_owned([client.reachable(s.primary) for s in shards], allowed=test.allow_destructive,
                      action="migrate slots between the primaries (checks moved and ask)")
    if fault is not None and not fault.by_hand and (changed := fault.touches()):
        require_owned(changed, allowed=test.allow_destructive, action=fault.description)
    config = run_config(test, client, nodes, shards, fault)
    for change in config:
        require_owned(change.nodes, allowed=test.allow_destructive,
                      action=f"CONFIG SET {' '.join(f'{k} {v}' for k, v in change.settings.items())} for the run")
    owned = all(ownership(*client.reachable(n)).owned for n in (shards[0].primary, *shards[0].replicas))
    return Plan(nodes, shards, version, fault, victim, history, config, owned)


def run_config(test: TestDescription, client: ClusterClient, nodes: list[ClusterNode], shards: list[Shard],
               fault: Fault | None) -> list[ConfigChange]:
    """The settings the run needs, set when it starts and put back after the rejoin."""
    def connect(address: Address) -> redis.Redis:
        return client.node(address, timeout=5.0)

    changes = []
    if fault is not None and fault.config:
        changes.append(ConfigChange(connect, [client.reachable(shards[0].primary)], dict(fault.config)))
    if test.min_replicas_to_write is not None:
        settings = {"min-replicas-to-write": str(test.min_replicas_to_write)}
        if test.min_replicas_max_lag is not None:
            settings["min-replicas-max-lag"] = str(test.min_replicas_max_lag)
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
def connected(args: argparse.Namespace, out: Output, *, migrates: bool, suite: str, loops: list[Loop]
              ) -> Iterator[tuple[TestDescription, ClusterClient, Target, Plan]]:
    """The head both cluster suites share: the description, the target, its client and the plan; a SetupError
    writes nothing. The only place a cluster suite sees the argparse namespace."""
    check_fault_options(args, suite, "cluster")
    if suite == "cache" and args.min_replicas_to_write is not None:
        raise SetupError("--min-replicas-to-write does not apply to the cache suite: it counts cache hits, not "
                         "lost writes; use python app/cluster_test.py --min-replicas-to-write N")
    test = describe(args, suite, "cluster", loops)
    target = resolve_target(test)
    with ClusterClient(target.seeds, password=test.password, host_map=test.host_map) as client:
        plan = prepare(test, client, target, migrates=migrates, notify=out.notify)
        if plan.fault is not None:
            test.facts = plan.fault.facts()
            if plan.fault.pins_old_primary:
                test.workload.append(Loop("pinned", PINNED, PINNED_PAUSE_S))
        yield test, client, target, plan
