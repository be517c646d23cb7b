"""Partition as a fault: cut the master/primary off from its peers at the network level, heal after the failover.

Local stack: every service with peers sends from its own loopback address (topology.own_address), so
iptables rules on lo drop what flows between the victim and each peer, in both directions and on
established connections too, while the harness, which connects from 127.0.0.1, still reaches both
sides: it is the client on the master's side. Compose: the same drops inside the victim container's
network namespace (nsenter), against the peers' container IPs; the harness reaches the victim through
its published port, from the bridge's gateway, which no rule names.

The rules live in one chain per victim (VHC-PARTITION-<port>). Heal deletes the chain and its jumps;
so does `python app/stack.py down` for a stack whose run died before it could heal (SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from lib import events
from lib.errors import SetupError
from lib.faults.fault import ALWAYS, UNOWNED, Fault, FaultContext, failover_touches
from lib.faults.nodes import container_for, docker, docker_usable
from lib.launcher.discovery import stack_serving
from lib.launcher.local_stack import (
    IPTABLES,
    LocalStack,
    RunCommand,
    partition_chain,
    remove_iptables_chains,
    run_command,
)
from lib.launcher.ownership import is_local_stack_host
from lib.topology.topology import BIND_SOURCE_ADDR, own_address
from lib.util import format_endpoint

BUS_PORT_OFFSET = 10000  # a cluster node's bus port (docker-compose.cluster.yml publishes port + 10000)
LEFTOVER_MARK = "VHC-"  # every chain the harness makes starts with it
OTHER_PLATFORMS = ("or use --fault exec --kill-cmd CMD --restore-cmd CMD with your platform's own cut "
                   "(an iptables rule, a NetworkPolicy)")


@dataclass(frozen=True)
class Side:
    """One end of the cut: the address its traffic comes from, and the ports it listens on."""

    name: str
    address: str
    ports: tuple[int, ...] = ()


@dataclass
class Partition(Fault):
    """Drop every packet between the victim and each peer; heal() deletes every rule again."""

    name = "partition"
    help = ("cut the primary off from every peer (iptables; root), healed once a replica is promoted; a writer "
            "stays on the cut side")
    not_for_cache = "the cache suite does not account what the minority side acknowledges during the cut"
    target = "the primary, cut off from its replicas and the sentinels (cluster: from every other node)"
    heals_in_run = True
    pins_old_primary = True
    minority_side = True  # the writer kept on the old primary is on the minority side: when does it stop?
    roles_put_back = {"sentinel": UNOWNED, "cluster": ALWAYS}
    marks = (events.HEALED, events.DEMOTED)

    victim: str  # how the description names it
    chain: str
    rules: list[list[str]]  # iptables arguments, each appending one DROP rule to chain
    jumps: list[list[str]]  # the hooks that send traffic through chain, e.g. ["INPUT", "-i", "lo"]
    peers: int
    where: str  # "iptables on lo", "iptables in valkey-master's network namespace"
    container: str | None = None  # compose: the victim's container, whose namespace holds the rules
    run: RunCommand = field(default=run_command, repr=False)
    touched: list[tuple[str, int]] = field(default_factory=list)  # the servers whose links it cuts

    @classmethod
    def build(cls, ctx: FaultContext) -> Partition:
        """The primary cut off from its replicas and the sentinels, or (cluster) from every other node."""
        if ctx.topology == "sentinel":
            peers = [*(r.reachable for r in ctx.replicas), *(s.reachable for s in ctx.sentinels)]
            touched = failover_touches(ctx)
        else:
            peers = [n.reachable for n in (*ctx.replicas, *ctx.others)]
            touched = [ctx.primary.reachable, *peers]
        cut = cut_off(ctx.stack_name, ctx.primary.reachable, peers, announced=ctx.primary.announced)
        cut.touched = touched
        return cut

    def touches(self) -> list[tuple[str, int]]:
        return self.touched

    @property
    def description(self) -> str:
        return f"partition: {self.victim} cut off from {self.peers} peers ({self.where})"

    def iptables(self) -> list[str] | None:
        """The iptables command for where the rules go; None once the container's namespace is gone."""
        if self.container is None:
            return list(IPTABLES)
        try:
            pid = docker("inspect", "-f", "{{.State.Pid}}", self.container).strip()
        except SetupError:  # the container is gone, and its namespace with it
            return None
        return None if pid in ("", "0") else ["nsenter", "-t", pid, "-n", *IPTABLES]

    def commands(self, iptables: list[str]) -> list[list[str]]:
        """Chain, rules, then the jumps: nothing is cut until the rules are all in place."""
        return [[*iptables, "-N", self.chain],
                *([*iptables, "-A", self.chain, *rule] for rule in self.rules),
                *([*iptables, "-I", hook, "1", *match, "-j", self.chain] for hook, *match in self.jumps)]

    def inject(self) -> None:
        iptables = self.iptables()
        if iptables is None:
            raise SetupError(f"partition: container {self.container} is not running (or docker cannot inspect it): "
                             "start it, then run again")
        remove_iptables_chains([self.chain], iptables, self.run)  # a cut an earlier run left behind
        for command in self.commands(iptables):
            proc = self.run(command)
            if proc.returncode != 0:
                remove_iptables_chains([self.chain], iptables, self.run)
                raise SetupError(f"partition: {' '.join(command)} failed: {(proc.stderr or proc.stdout).strip()}")

    def heal(self, timeout: float) -> bool:
        """Delete the chain and its jumps; True once none is left (a stopped container took them along)."""
        iptables = self.iptables()
        if iptables is None:
            return True
        remove_iptables_chains([self.chain], iptables, self.run)
        listing = self.run([*iptables, "-S"])
        return listing.returncode == 0 and f"-N {self.chain}" not in listing.stdout.splitlines()


def cut_off(topology: str, victim: tuple[str, int], peers: list[tuple[str, int]], *,
            announced: tuple[str, int]) -> Partition:
    """The partition of victim (its reachable address) from peers (reachable addresses of nodes and sentinels).

    The local stack serving victim if there is one, else the compose container behind announced;
    a SetupError (exit 2, one line) says why neither can be cut and what would work.
    """
    if not peers:
        raise SetupError(f"partition: no peers to cut {format_endpoint(*victim)} off from")
    found = stack_serving(topology, victim)
    if found:
        require_partition_tools()
        return local_cut(topology, found[0], found[1], peers)
    if docker_usable() and (container := container_for(*announced)):
        require_partition_tools(compose=True)
        return compose_cut(container, announced[1], peers)
    raise SetupError(f"--fault partition: {format_endpoint(*victim)} belongs to no local {topology} stack and to no "
                     f"container of this repo's compose files: start one (python app/stack.py up {topology}), "
                     + OTHER_PLATFORMS)


def local_cut(topology: str, stack: LocalStack, victim_service: str, peers: list[tuple[str, int]],
              run: RunCommand = run_command) -> Partition:
    """Rules on lo: each peer's own address and ports against the victim's, both ways (INPUT sees every packet)."""
    bus = BUS_PORT_OFFSET if topology == "cluster" else None
    victim = _local_side(stack, victim_service, bus)
    sides = []
    for address in peers:
        name = stack.service_at(address[1]) if is_local_stack_host(address[0]) else None
        if name is None or name == victim_service:
            raise SetupError(f"partition: {format_endpoint(*address)} is no other service of the {topology} stack "
                             f"in {stack.state_dir}: give the peers of {victim_service} from that stack")
        sides.append(_local_side(stack, name, bus))
    rules = []
    for peer in sides:
        rules += [_drop(source=peer.address, dports=victim.ports), _drop(dest=peer.address, sports=victim.ports),
                  _drop(source=victim.address, dports=peer.ports), _drop(dest=victim.address, sports=peer.ports)]
    return Partition(format_endpoint("127.0.0.1", victim.ports[0]), partition_chain(victim.ports[0]), rules,
                     [["INPUT", "-i", "lo"]], len(sides), "iptables on lo", run=run)


def _local_side(stack: LocalStack, name: str, bus: int | None) -> Side:
    service = stack.service(name)
    if service.port is None or BIND_SOURCE_ADDR not in service.argv:
        raise SetupError(f"partition: {name} of the stack in {stack.state_dir} sends from 127.0.0.1 like the harness "
                         "(a stack started by an older launcher): restart the stack (python app/stack.py down, "
                         "then up) so that each service gets its own loopback address")
    ports = (service.port, service.port + bus) if bus else (service.port,)
    return Side(name, own_address(service.port), ports)


def _drop(*, source: str | None = None, dest: str | None = None, dports: Iterable[int] = (),
          sports: Iterable[int] = ()) -> list[str]:
    rule = [*(["-s", source] if source else []), *(["-d", dest] if dest else []), "-p", "tcp", "-m", "multiport"]
    rule += ["--dports", ",".join(map(str, dports))] if dports else ["--sports", ",".join(map(str, sports))]
    return [*rule, "-j", "DROP"]


def compose_cut(container: str, port: int, peers: list[tuple[str, int]], run: RunCommand = run_command) -> Partition:
    """Rules in the victim container's namespace (its port names the chain): all from and to each peer's IPs dropped."""
    rules = []
    for address in peers:
        peer = container_for(*address)
        if peer is None:
            raise SetupError(f"partition: no container of this repo's compose files serves {format_endpoint(*address)}")
        for ip in container_ips(peer):
            rules += [["-s", ip, "-j", "DROP"], ["-d", ip, "-j", "DROP"]]
    return Partition(container, partition_chain(port), rules, [["INPUT"], ["OUTPUT"]], len(peers),
                     f"iptables in {container}'s network namespace", container=container, run=run)


def container_ips(container: str) -> list[str]:
    """The container's address on each of its networks (compose: one)."""
    out = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", container)
    ips = out.split()
    if not ips:
        raise SetupError(f"partition: container {container} has no IP address (is it running?)")
    return ips


def require_partition_tools(*, compose: bool = False, run: RunCommand = run_command) -> None:
    """A SetupError naming what a partition lacks here (root, iptables, nsenter for compose) and how to get it."""
    missing = []
    if shutil.which(IPTABLES[0]) is None:
        missing.append("iptables (apt-get install -y iptables)")
    if os.geteuid() != 0:
        missing.append(f"root to change iptables rules (running as uid {os.geteuid()}: run it with sudo -E)")
    if compose and shutil.which("nsenter") is None:
        missing.append("nsenter to enter the container's network namespace (apt-get install -y util-linux)")
    if missing:
        raise SetupError(f"--fault partition needs {'; '.join(missing)}; {OTHER_PLATFORMS}")
    probe = run([*IPTABLES, "-S", "INPUT"])
    if probe.returncode != 0:
        why = " ".join((probe.stderr or probe.stdout).split())[:160]
        raise SetupError(f"--fault partition: iptables does not work here ({why}): it needs CAP_NET_ADMIN and the "
                         f"kernel's netfilter; {OTHER_PLATFORMS}")


def leftover_rules(ports: Iterable[int] | None = None, run: RunCommand = run_command) -> list[str]:
    """Every harness chain or rule still in the host's iptables (only those of victims on ports, if given)."""
    try:
        listing = run([*IPTABLES, "-S"])
    except (OSError, subprocess.SubprocessError):
        return []  # no iptables: no rule can have been added
    lines = [line for line in listing.stdout.splitlines() if LEFTOVER_MARK in line]
    if ports is not None:
        chains = {partition_chain(port) for port in ports}
        lines = [line for line in lines if set(line.split()) & chains]
    return lines


@contextlib.contextmanager
def partitioned(fault: Partition) -> Iterator[Partition]:
    """The cut for the length of a with block, healed however the block ends."""
    fault.pending_heal = True
    try:
        fault.inject()
        yield fault
    finally:
        if fault.heal(timeout=10):
            fault.pending_heal = False
