"""Compose and local must not drift for the cluster: same services, ports, commands and settings."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import redis
import yaml

from lib.topology import load_topology, local_plan
from lib.util import REPO_ROOT

COMPOSE_FILE = "docker-compose.cluster.yml"
NODES = [f"node-{port}" for port in range(7000, 7006)]


def plans(tmp_path, port_map=None):
    topology = load_topology("cluster")
    binaries = {"valkey-server": "VALKEY", "python": "PYTHON"}
    return topology, {s.name: local_plan(topology, s, stack_dir=tmp_path, port_map=port_map or {}, binaries=binaries)
                      for s in topology.services.values()}


def test_cluster_topology_has_six_nodes_and_an_init_job():
    topology = load_topology("cluster")
    assert [s.name for s in topology.of_kind("server")] == NODES
    assert [s.name for s in topology.of_kind("job")] == ["cluster-init"]
    assert topology.start_order()[-1].name == "cluster-init", "init runs after every node"


def test_free_ports_reach_the_init_job_and_the_nodes(tmp_path):
    port_map = {7000 + i: 40000 + i for i in range(6)}
    _, local = plans(tmp_path, port_map)
    init = local["cluster-init"].argv
    assert [t for t in init if t.startswith("127.0.0.1:")] == [f"127.0.0.1:{40000 + i}" for i in range(6)]
    assert local["node-7003"].argv[local["node-7003"].argv.index("--port") + 1] == "40003"


def test_rendered_config_differs_only_in_the_bind_address(tmp_path):
    _, local = plans(tmp_path)
    rendered = next(t for t in local["node-7000"].argv if t.endswith("cluster.conf"))
    source = (REPO_ROOT / "valkey" / "cluster.conf").read_text()
    assert Path(rendered).read_text() == source.replace("bind 0.0.0.0", "bind 127.0.0.1")


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
