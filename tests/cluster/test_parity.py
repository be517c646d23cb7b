"""Compose and local must not drift for the cluster: commands written out by hand, healthchecks vs readiness."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import redis
import yaml

from lib.topology.topology import load_topology, local_plan, own_address
from lib.util import REPO_ROOT
from unit.readiness_recorder import CLUSTER_OK, JOB, PING, healthcheck_condition, readiness_waits

COMPOSE_FILE = "docker-compose.cluster.yml"
NODES = [f"node-{port}" for port in range(7000, 7006)]


# Non-trivial on purpose: with an empty map a wrong port translation would go unnoticed.
PORTS = {7000: 42000, 7001: 42011, 7002: 42022, 7003: 42033, 7004: 42044, 7005: 42055}
FAKE_BINARIES = {"valkey-server": "VALKEY", "python": "PYTHON"}


def plans(tmp_path) -> dict:
    topology = load_topology("cluster")
    return {s.name: local_plan(topology, s, stack_dir=tmp_path, port_map=PORTS, binaries=FAKE_BINARIES)
            for s in topology.services.values()}


def compose_part(plan) -> list[str]:
    """The argv without the local-only tail (plan.local_args), which test_local_only_settings_* pins."""
    return list(plan.argv[:len(plan.argv) - len(plan.local_args)])


def test_cluster_topology_has_six_nodes_and_an_init_job():
    topology = load_topology("cluster")
    assert [s.name for s in topology.of_kind("server")] == NODES
    assert [s.name for s in topology.of_kind("job")] == ["cluster-init"]
    assert topology.start_order()[-1].name == "cluster-init", "init runs after every node"


def test_local_commands_are_the_compose_commands_on_loopback_with_the_mapped_ports(tmp_path):
    local = plans(tmp_path)
    assert compose_part(local["node-7003"]) == [
        "VALKEY", f"{tmp_path}/rendered/node-7003/cluster.conf", "--port", "42033", "--dir", f"{tmp_path}/node-7003",
        "--cluster-announce-hostname", "127.0.0.1", "--cluster-preferred-endpoint-type", "hostname"], "node-7003"
    assert list(local["cluster-init"].argv) == [
        "PYTHON", f"{REPO_ROOT}/cluster-init/init.py", "--primary", "127.0.0.1:42000", "--primary", "127.0.0.1:42011",
        "--primary", "127.0.0.1:42022", "--replica", "127.0.0.1:42033", "--replica", "127.0.0.1:42044",
        "--replica", "127.0.0.1:42055"], "the init job gets every node at its mapped port"
    assert {name: plan.port for name, plan in local.items()} == {
        "node-7000": 42000, "node-7001": 42011, "node-7002": 42022, "node-7003": 42033, "node-7004": 42044,
        "node-7005": 42055, "cluster-init": None}, "each node on its mapped port; the job listens on none"


def test_local_only_settings_give_each_node_its_own_source_address_and_announce_loopback(tmp_path):
    """Allowed drift, local only: each node also listens on and sends from its own loopback address, so a
    partition can cut its bus with iptables (lib/faults/partition.py); it announces 127.0.0.1 as before,
    or the nodes would record each other's source addresses in CLUSTER NODES and INFO replication."""
    for name, plan in plans(tmp_path).items():
        if name == "cluster-init":
            assert plan.local_args == (), "the init job is no server"
            continue
        own = own_address(plan.port)
        assert plan.local_args == ("--bind", "127.0.0.1", own, "--bind-source-addr", own, "--cluster-announce-ip",
                                   "127.0.0.1", "--replica-announce-ip", "127.0.0.1"), name


def test_rendered_config_differs_only_in_the_bind_address(tmp_path):
    local = plans(tmp_path)
    rendered = tmp_path / "rendered" / "node-7000" / "cluster.conf"
    assert str(rendered) in local["node-7000"].argv, "the node runs the rendered copy"
    source = (REPO_ROOT / "valkey" / "cluster.conf").read_text()
    assert "cluster-node-timeout 2000\n" in source and "bind 0.0.0.0\n" in source, "the compose settings"
    assert rendered.read_text() == source.replace("bind 0.0.0.0", "bind 127.0.0.1"), "only the bind address differs"


def test_compose_healthchecks_wait_for_what_the_local_launcher_waits_for(tmp_path, monkeypatch):
    """Compose: every node answers PING, then cluster-init runs (depends_on service_healthy). The launcher
    must wait for the same, in the same order, and then for cluster_state:ok (what init finishing means)."""
    spec = yaml.safe_load((REPO_ROOT / COMPOSE_FILE).read_text())["services"]
    assert spec["node-7004"]["healthcheck"]["test"] == ["CMD", "valkey-cli", "-p", "7004", "ping"]
    assert spec["cluster-init"]["depends_on"] == {name: {"condition": "service_healthy"} for name in NODES}
    assert "healthcheck" not in spec["cluster-init"], "a one-shot job: done when it exits"
    recorder = readiness_waits("cluster", tmp_path, PORTS, monkeypatch)
    waited = recorder.waited_for()
    for name in NODES:
        condition, port, _ = healthcheck_condition(spec[name]["healthcheck"]["test"])
        assert (condition, port) == (PING, int(name.split("-")[1])), f"{name}'s healthcheck"
        assert waited[name] == [PING, CLUSTER_OK], f"{name}: the launcher waited for {waited[name]}"
    order = [(service, condition) for service, condition, ready in recorder.log if ready]
    job = order.index(("cluster-init", JOB))
    assert all(order.index((name, PING)) < job < order.index((name, CLUSTER_OK)) for name in NODES), \
        f"PING on every node, then the init job, then cluster_state:ok: {order}"


def test_compose_publishes_each_port_and_its_bus_port_on_loopback_only():
    spec = yaml.safe_load((REPO_ROOT / COMPOSE_FILE).read_text())
    for name in NODES:
        port = int(name.split("-")[1])
        bus = port + 10000
        assert spec["services"][name]["ports"] == [f"127.0.0.1:{port}:{port}", f"127.0.0.1:{bus}:{bus}"], name
    for name, body in spec["services"].items():
        for entry in body.get("ports", []):
            assert str(entry).startswith("127.0.0.1:"), (name, entry)


def test_compose_file_validates():
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (.ci/run installs it)")
    proc = subprocess.run([tool, "-f", COMPOSE_FILE, "config", "-q"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.integration
def test_running_local_cluster_has_the_compose_settings(cluster_stack):
    for name in NODES:
        client = redis.Redis(port=cluster_stack.service(name).port, decode_responses=True)
        config = client.config_get("cluster-*")
        assert (config["cluster-enabled"], config["cluster-node-timeout"], config["cluster-require-full-coverage"]) == (
            "yes", "2000", "no"), name
        assert client.config_get("cluster-preferred-endpoint-type")["cluster-preferred-endpoint-type"] == "hostname"
        assert client.config_get("repl-diskless-sync-delay")["repl-diskless-sync-delay"] == "0", name
        client.close()
