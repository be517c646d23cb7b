"""--fault partition: the master/primary cut off from its peers on lo, healed, and no rule left behind.

The command lines are checked against a fake iptables (compose too: Docker does not run here). The
integration tests cut real local stacks on free ports: replication and the sentinels lose the master
while the harness, on 127.0.0.1, still writes to it; a cluster flags its cut primary as failed.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from conftest import assert_all_stopped, recorded_pids, running_stack, start_stack
from lib.errors import SetupError
from lib.faults import partition
from lib.faults.partition import compose_cut, cut_off, leftover_rules, local_cut, partitioned, require_partition_tools
from lib.launcher.local_stack import IPTABLES, LocalStack, ServiceState
from lib.topology.topology import load_topology, local_plan, own_address
from lib.util import REPO_ROOT
from lib.waits import wait_until

APP = REPO_ROOT / "app"
needs_iptables = pytest.mark.usefixtures("partition_tools")  # a skip, or under CI=true a failure


class FakeIptables:
    """Enough of iptables -N/-A/-I/-D/-F/-X/-S to replay what the fault runs; every command is kept."""

    def __init__(self, fail_on: str | None = None):
        self.chains: dict[str, list[list[str]]] = {"INPUT": [], "OUTPUT": []}
        self.commands: list[list[str]] = []
        self.fail_on = fail_on

    def __call__(self, argv: list[str]) -> subprocess.CompletedProcess:
        self.commands.append(argv)
        args = argv[argv.index("iptables") + 3:]  # after iptables -w 5
        op, chain, rest = args[0], args[1] if len(args) > 1 else "", args[2:]
        if self.fail_on and self.fail_on in argv:
            return subprocess.CompletedProcess(argv, 1, "", "iptables: Bad rule")
        if op == "-S":
            lines = [f"-N {name}" for name in self.chains if name not in ("INPUT", "OUTPUT")]
            lines += [f"-A {name} {shlex.join(rule)}" for name, rules in self.chains.items() for rule in rules]
            return subprocess.CompletedProcess(argv, 0, "\n".join(lines) + "\n", "")
        if op == "-N":
            self.chains[chain] = []
        elif op == "-A":
            self.chains[chain].append(rest)
        elif op == "-I":
            self.chains[chain].insert(int(rest[0]) - 1, rest[1:])
        elif op == "-D":
            self.chains[chain].remove(rest)
        elif op == "-F":
            self.chains[chain] = []
        elif op == "-X":
            del self.chains[chain]
        return subprocess.CompletedProcess(argv, 0, "", "")


def planned_stack(topology_name: str, tmp_path: Path, port_map: dict[int, int]) -> LocalStack:
    """A LocalStack as the launcher records it (argv from local_plan), nothing started."""
    topology = load_topology(topology_name)
    stack = LocalStack(topology, tmp_path, port_map)
    for service in topology.services.values():
        plan = local_plan(topology, service, stack_dir=tmp_path, port_map=port_map, binaries={"python": "PYTHON"})
        stack.services[service.name] = ServiceState(service.name, service.kind, plan.port, list(plan.argv),
                                                    str(plan.data_dir), "log")
    return stack


HA_PORTS = {6379: 21001, 6380: 21002, 6381: 21003, 26379: 21011, 26380: 21012, 26381: 21013}


def ha_cut(tmp_path, run) -> partition.Partition:
    stack = planned_stack("ha", tmp_path, HA_PORTS)
    peers = [("127.0.0.1", port) for port in (21002, 21003, 21011, 21012, 21013)]
    return local_cut("ha", stack, "valkey-master", peers, run=run)


# ---- the rules, without servers -------------------------------------------------------------------

def test_local_rules_drop_each_peer_both_ways_and_never_name_the_harness_address(tmp_path):
    fault = ha_cut(tmp_path, FakeIptables())
    master, replica = own_address(21001), own_address(21002)
    assert fault.description == "partition: 127.0.0.1:21001 cut off from 5 peers (iptables on lo)"
    assert fault.heals_in_run and fault.can_heal, "the run heals it after the failover; an interrupt undoes it"
    commands = [" ".join(c) for c in fault.commands(list(IPTABLES))]
    assert commands[:5] == [
        "iptables -w 5 -N VHC-PARTITION-21001",
        f"iptables -w 5 -A VHC-PARTITION-21001 -s {replica} -p tcp -m multiport --dports 21001 -j DROP",
        f"iptables -w 5 -A VHC-PARTITION-21001 -d {replica} -p tcp -m multiport --sports 21001 -j DROP",
        f"iptables -w 5 -A VHC-PARTITION-21001 -s {master} -p tcp -m multiport --dports 21002 -j DROP",
        f"iptables -w 5 -A VHC-PARTITION-21001 -d {master} -p tcp -m multiport --sports 21002 -j DROP"], commands
    assert commands[-1] == "iptables -w 5 -I INPUT 1 -i lo -j VHC-PARTITION-21001", "the jump comes last: one moment"
    assert len(commands) == 1 + 4 * 5 + 1, "four rules per peer"
    assert not [c for c in commands if "127.0.0.1" in c], "the harness connects from 127.0.0.1: never dropped"


def test_a_cluster_cut_includes_the_bus_ports(tmp_path):
    ports = {7000 + i: 21100 + i for i in range(6)}
    stack = planned_stack("cluster", tmp_path, ports)
    fault = local_cut("cluster", stack, "node-7000", [("127.0.0.1", p) for p in range(21101, 21106)],
                      run=FakeIptables())
    assert fault.rules[0] == ["-s", own_address(21101), "-p", "tcp", "-m", "multiport", "--dports", "21100,31100",
                              "-j", "DROP"], "the victim's data and bus port"
    assert fault.rules[2][-4:] == ["--dports", "21101,31101", "-j", "DROP"], "and each peer's"


def test_inject_then_heal_leaves_no_chain_and_no_jump(tmp_path):
    iptables = FakeIptables()
    fault = ha_cut(tmp_path, iptables)
    fault.inject()
    assert ["-i", "lo", "-j", "VHC-PARTITION-21001"] in iptables.chains["INPUT"]
    assert len(iptables.chains["VHC-PARTITION-21001"]) == 20
    assert fault.heal(timeout=1) is True
    assert iptables.chains == {"INPUT": [], "OUTPUT": []}, iptables.chains
    assert fault.heal(timeout=1) is True, "healing twice (the run, then an interrupt's undo) is fine"


def test_a_cut_left_by_an_earlier_run_is_replaced_not_doubled(tmp_path):
    iptables = FakeIptables()
    ha_cut(tmp_path, iptables).inject()
    ha_cut(tmp_path, iptables).inject()
    assert iptables.chains["INPUT"] == [["-i", "lo", "-j", "VHC-PARTITION-21001"]], iptables.chains["INPUT"]
    assert len(iptables.chains["VHC-PARTITION-21001"]) == 20


def test_a_rule_that_fails_removes_what_was_added_and_says_why(tmp_path):
    iptables = FakeIptables(fail_on="--sports")
    with pytest.raises(SetupError, match="partition: iptables .* failed: iptables: Bad rule"):
        ha_cut(tmp_path, iptables).inject()
    assert iptables.chains == {"INPUT": [], "OUTPUT": []}, "nothing half-cut stays behind"


def test_a_stack_without_own_addresses_is_refused_with_the_fix(tmp_path):
    stack = planned_stack("ha", tmp_path, HA_PORTS)
    for service in stack.services.values():
        service.argv = [a for a in service.argv if a != "--bind-source-addr"]
    with pytest.raises(SetupError, match=r"older launcher\): restart the stack \(python app/stack.py down"):
        local_cut("ha", stack, "valkey-master", [("127.0.0.1", 21002)], run=FakeIptables())


def test_a_peer_outside_the_stack_is_refused(tmp_path):
    stack = planned_stack("ha", tmp_path, HA_PORTS)
    with pytest.raises(SetupError, match="127.0.0.2:21002 is no other service of the ha stack"):
        local_cut("ha", stack, "valkey-master", [("127.0.0.2", 21002)], run=FakeIptables())


def test_compose_cut_drops_the_peer_containers_inside_the_victims_namespace(monkeypatch):
    containers = {6380: "valkey-replica1", 26379: "valkey-sentinel1"}
    ips = {"valkey-replica1": "172.18.0.3 ", "valkey-sentinel1": "172.18.0.5 "}
    monkeypatch.setattr(partition, "container_for", lambda host, port: containers.get(port))

    def fake_docker(*args: str) -> str:
        assert args[:2] == ("inspect", "-f"), args
        return "4242\n" if args[2] == "{{.State.Pid}}" else ips[args[3]]

    monkeypatch.setattr(partition, "docker", fake_docker)
    iptables = FakeIptables()
    fault = compose_cut("valkey-master", 6379, [("127.0.0.1", 6380), ("127.0.0.1", 26379)], run=iptables)
    assert fault.description == ("partition: valkey-master cut off from 2 peers "
                                 "(iptables in valkey-master's network namespace)")
    fault.inject()
    ns = "nsenter -t 4242 -n iptables -w 5"
    assert [" ".join(c) for c in iptables.commands if "-S" not in c] == [
        f"{ns} -N VHC-PARTITION-6379",
        f"{ns} -A VHC-PARTITION-6379 -s 172.18.0.3 -j DROP", f"{ns} -A VHC-PARTITION-6379 -d 172.18.0.3 -j DROP",
        f"{ns} -A VHC-PARTITION-6379 -s 172.18.0.5 -j DROP", f"{ns} -A VHC-PARTITION-6379 -d 172.18.0.5 -j DROP",
        f"{ns} -I INPUT 1 -j VHC-PARTITION-6379", f"{ns} -I OUTPUT 1 -j VHC-PARTITION-6379"]
    assert fault.heal(timeout=1) and iptables.chains == {"INPUT": [], "OUTPUT": []}
    ips_seen = " ".join(" ".join(c) for c in iptables.commands)
    assert "172.18.0.1" not in ips_seen, "the bridge gateway (the harness through the published port) is never cut"


def test_compose_heal_after_the_container_stopped_has_nothing_to_undo(monkeypatch):
    monkeypatch.setattr(partition, "docker", lambda *args: "0\n")  # a stopped container has no pid, no namespace
    iptables = FakeIptables()
    fault = partition.Partition("valkey-master", "VHC-PARTITION-6379", [], [["INPUT"]], 1, "x",
                                container="valkey-master", run=iptables)
    assert fault.heal(timeout=1) is True and iptables.commands == []
    with pytest.raises(SetupError, match="container valkey-master is not running"):
        fault.inject()


def test_missing_tools_are_named_with_the_fix(monkeypatch):
    monkeypatch.setattr(partition.shutil, "which", lambda name: None)
    monkeypatch.setattr(partition.os, "geteuid", lambda: 1000)
    with pytest.raises(SetupError) as error:
        require_partition_tools(compose=True)
    message = str(error.value)
    assert "iptables (apt-get install -y iptables)" in message and "root" in message and "uid 1000" in message
    assert "nsenter" in message and "--fault exec" in message and "\n" not in message, message


def test_an_iptables_that_does_not_work_is_a_setup_error(monkeypatch):
    monkeypatch.setattr(partition.shutil, "which", lambda name: f"/usr/sbin/{name}")
    monkeypatch.setattr(partition.os, "geteuid", lambda: 0)

    def denied(argv):
        return subprocess.CompletedProcess(argv, 4, "", "iptables v1.8.9 (nf_tables): Could not fetch rule set\n")

    with pytest.raises(SetupError, match=r"iptables does not work here \(iptables v1.8.9 .*Could not fetch"):
        require_partition_tools(run=denied)


def test_leftover_rules_lists_harness_chains_only(tmp_path):
    iptables = FakeIptables()
    iptables.chains["DOCKER-USER"] = [["-j", "RETURN"]]
    ha_cut(tmp_path, iptables).inject()
    left = leftover_rules(run=iptables)
    assert "-N VHC-PARTITION-21001" in left and len(left) == 22 and not [x for x in left if "DOCKER" in x], left
    assert leftover_rules([9999], run=iptables) == [], "another stack's ports: none of its chains"


# ---- real servers ---------------------------------------------------------------------------------

def client(stack: LocalStack, name: str) -> redis.Redis:
    return redis.Redis(port=stack.service(name).port, decode_responses=True, socket_timeout=2)


def address(stack: LocalStack, name: str) -> tuple[str, int]:
    return "127.0.0.1", stack.service(name).port


def master_cut(stack: LocalStack) -> partition.Partition:
    victim = address(stack, "valkey-master")
    peers = [address(stack, name) for name, svc in stack.services.items() if name != "valkey-master" and svc.port]
    return cut_off("ha", victim, peers, announced=victim)


def stack_ports(stack: LocalStack) -> list[int]:
    return [svc.port for svc in stack.services.values() if svc.port]


@pytest.fixture(scope="module")
def ha_partition_stack(tmp_path_factory, monkeypatch_module):
    """An HA stack that notices a cut fast and never fails over (quorum 4 of 3), so a heal restores the same links."""
    with running_stack("ha", tmp_path_factory.mktemp("partition") / "ha") as stack:
        monkeypatch_module.setenv("VHC_STACK_STATE", str(stack.state_dir))  # where cut_off finds it
        for name in ("valkey-replica1", "valkey-replica2"):
            client(stack, name).config_set("repl-timeout", 2)
        for name in ("valkey-sentinel1", "valkey-sentinel2", "valkey-sentinel3"):
            client(stack, name).execute_command("SENTINEL", "SET", "myvalkey", "quorum", "4")
        yield stack
        assert leftover_rules(stack_ports(stack)) == [], "a test left partition rules behind"


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def link_status(stack: LocalStack, name: str) -> str:
    return client(stack, name).info("replication")["master_link_status"]


def sentinel_flags(stack: LocalStack, name: str) -> str:
    return client(stack, name).sentinel_master("myvalkey")["flags"]


@pytest.mark.integration
@needs_iptables
def test_cut_master_loses_replicas_and_sentinels_while_the_harness_still_writes(ha_partition_stack):
    stack = ha_partition_stack
    replicas = ("valkey-replica1", "valkey-replica2")
    sentinels = ("valkey-sentinel1", "valkey-sentinel2", "valkey-sentinel3")
    links = {r: lambda r=r: link_status(stack, r) for r in replicas}
    flags = {s: lambda s=s: sentinel_flags(stack, s) for s in sentinels}
    master = client(stack, "valkey-master")
    with partitioned(master_cut(stack)):
        cut_at = time.monotonic()
        wait_until(lambda: seen_everywhere(links, lambda link: link == "down"), timeout=20,
                   what="the replicas to lose the master (master_link_status:down)")
        wait_until(lambda: seen_everywhere(flags, lambda flag: "s_down" in flag), timeout=20,
                   what="+sdown on every sentinel")
        seen_after = time.monotonic() - cut_at
        assert master.set("written-during-the-cut", "yes") and master.get("written-during-the-cut") == "yes"
        assert master.client_info()["addr"].startswith("127.0.0.1:"), "the harness is on the master's side"
    healed_at = time.monotonic()
    assert leftover_rules(stack_ports(stack)) == []
    wait_until(lambda: seen_everywhere(links, lambda link: link == "up"), timeout=30,
               what="replication to come back after the heal")
    wait_until(lambda: seen_everywhere(flags, lambda flag: "s_down" not in flag), timeout=30,
               what="-sdown on every sentinel after the heal")
    back_after = time.monotonic() - healed_at
    assert client(stack, "valkey-replica1").get("written-during-the-cut") == "yes", "the same master, no failover"
    print(f"cut seen after {seen_after:.2f}s; links and sentinels back {back_after:.2f}s after the heal")


def seen_everywhere(probes: dict, holds) -> tuple[bool, dict]:
    """(every probe's value satisfies holds, what each saw): a wait_until check over several servers."""
    seen = {name: probe() for name, probe in probes.items()}
    return all(holds(value) for value in seen.values()), seen


@pytest.mark.integration
@needs_iptables
def test_a_test_that_raises_inside_the_cut_leaves_no_rule(ha_partition_stack):
    ports = stack_ports(ha_partition_stack)
    with pytest.raises(RuntimeError, match="boom"), partitioned(master_cut(ha_partition_stack)):
        assert len(leftover_rules(ports)) == 22, "the chain, 20 rules and the jump are in place"
        raise RuntimeError("boom")
    assert leftover_rules(ports) == []


HOLDER = """
import sys
sys.path.insert(0, {app!r})
from lib.faults.fault import inject_recorded
from lib.faults.partition import cut_off
from lib.history import History
from lib.interrupts import handled, interrupts_raise
from lib.waits import wait_until

victim, peers = {victim!r}, {peers!r}
fault = cut_off("ha", victim, peers, announced=victim)
with interrupts_raise():
    try:
        inject_recorded(fault, History(), "")
        print("cut", flush=True)
        wait_until(lambda: (False, "holding the cut"), timeout=120, what="an interrupt")
    except KeyboardInterrupt:
        handled()
        print(fault.undo(), flush=True)
        sys.exit(130)
"""


def start_holder(stack: LocalStack) -> subprocess.Popen:
    """A process holding a cut of the stack's master, as a suite run does between inject and heal."""
    victim = address(stack, "valkey-master")
    peers = [address(stack, n) for n, s in stack.services.items() if n != "valkey-master" and s.port]
    holder = subprocess.Popen([sys.executable, "-c", HOLDER.format(app=str(APP), victim=victim, peers=peers)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, VHC_STACK_STATE=str(stack.state_dir)))
    line = holder.stdout.readline()
    assert line == "cut\n", f"the holder did not cut: {line!r} {holder.stderr.read() if not line else ''}"
    return holder


@pytest.mark.integration
@needs_iptables
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_heals_its_cut(ha_partition_stack, signum):
    ports = stack_ports(ha_partition_stack)
    holder = start_holder(ha_partition_stack)
    try:
        assert leftover_rules(ports), "the cut is in place while the holder runs"
        holder.send_signal(signum)
        out, err = holder.communicate(timeout=30)
    finally:
        holder.kill()
    assert holder.returncode == 130, (holder.returncode, out, err)
    assert "undone: partition: 127.0.0.1:" in out, out + err
    assert leftover_rules(ports) == [], "the undo deleted the chain and its jump"


@pytest.mark.integration
@needs_iptables
def test_a_killed_run_leaves_its_cut_to_stack_py_down(tmp_path):
    """SIGKILL: nothing in the run can heal; `python app/stack.py down` removes the rules with the stack."""
    stack = start_stack("ha", tmp_path / "ha")
    pids = recorded_pids(stack)
    ports = stack_ports(stack)
    try:
        holder = start_holder(stack)
        holder.kill()
        holder.communicate(timeout=30)
        assert len(leftover_rules(ports)) == 22, "a SIGKILLed run cannot heal"
        proc = subprocess.run([sys.executable, "app/stack.py", "down", "--state-dir", str(stack.state_dir)],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert f"removed the partition rules a run left behind: iptables chains VHC-PARTITION-{ports[0]}" in \
            " ".join(proc.stdout.split()), proc.stdout
    finally:
        stack.down()
        assert_all_stopped(pids)
    assert leftover_rules(ports) == []


@pytest.mark.integration
@needs_iptables
def test_a_cut_cluster_primary_is_failed_by_its_peers_and_still_answers_the_harness(tmp_path, monkeypatch):
    with running_stack("cluster", tmp_path / "cluster", bus_offset=partition.BUS_PORT_OFFSET) as stack:
        monkeypatch.setenv("VHC_STACK_STATE", str(stack.state_dir))
        servers = [name for name, svc in stack.services.items() if svc.kind == "server"]
        nodes = client(stack, servers[0]).cluster("NODES")
        victim_key = next(key for key, node in nodes.items() if "master" in node["flags"] and node["slots"])
        assert victim_key.startswith("127.0.0.1:"), f"nodes record the announced address, not their own: {nodes}"
        victim = ("127.0.0.1", int(victim_key.split(":")[1]))
        victim_name = stack.service_at(victim[1])
        observer = client(stack, next(n for n in servers if n != victim_name))
        peers = [address(stack, n) for n in servers if n != victim_name]
        with partitioned(cut_off("cluster", victim, peers, announced=victim)) as fault:
            assert "cut off from 5 peers" in fault.description
            cut_at = time.monotonic()
            wait_until(lambda: ("fail" in observer.cluster("NODES")[victim_key]["flags"].split(","),
                                observer.cluster("NODES")[victim_key]["flags"]), timeout=30,
                       what="the victim's peers to flag it fail")
            failed_after = time.monotonic() - cut_at
            assert client(stack, victim_name).ping(), "the harness still reaches the cut primary from 127.0.0.1"
        assert leftover_rules(stack_ports(stack)) == []
        print(f"cluster: primary flagged fail {failed_after:.2f}s after the cut")
