"""Compose and local must not drift: same services, ports, commands and settings.

The local stack is derived from the compose file, so drift can only come from the translation:
these tests fail if it changes anything besides hostnames -> 127.0.0.1 and container paths ->
files in the repo, and if a running local stack does not have the compose file's settings.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
import redis

from lib.topology import load_topology, local_plan
from lib.util import REPO_ROOT

COMPOSE_FILES = ["docker-compose.ha.yml"]


def plans(name: str, tmp_path):
    topology = load_topology(name)
    binaries = {"valkey-server": "VALKEY", "redis-server": "REDIS", "python": "PYTHON"}
    return topology, {s.name: local_plan(topology, s, stack_dir=tmp_path, port_map={}, binaries=binaries)
                      for s in topology.services.values()}


def test_ha_topology_has_the_six_services():
    assert set(load_topology("ha").services) == {"valkey-master", "valkey-replica1", "valkey-replica2",
                                                 "valkey-sentinel1", "valkey-sentinel2", "valkey-sentinel3"}


@pytest.mark.parametrize("name", ["ha", "cluster", "compat"])
def test_local_plan_is_the_compose_command(name, tmp_path):
    """Only hostnames and 0.0.0.0 (-> 127.0.0.1, also in HOST:PORT) and container paths (-> local files) differ."""
    topology, local = plans(name, tmp_path)
    hostnames = {s.hostname for s in topology.services.values()}
    for svc_name, service in topology.services.items():
        plan = local[svc_name]
        assert plan.port == service.port, svc_name
        assert len(plan.argv) == len(service.command), svc_name
        for compose_token, local_token in zip(service.command[1:], plan.argv[1:], strict=True):
            if compose_token in hostnames or compose_token == "0.0.0.0":  # local processes bind loopback
                assert local_token == "127.0.0.1", (svc_name, compose_token)
            elif compose_token.rpartition(":")[0] in hostnames:
                assert local_token == f"127.0.0.1:{compose_token.rpartition(':')[2]}", (svc_name, compose_token)
            elif compose_token.startswith("/"):
                assert local_token.startswith((str(tmp_path), str(REPO_ROOT))), local_token
            else:
                assert local_token == compose_token, (svc_name, compose_token, local_token)


def test_rendered_configs_differ_only_in_hostnames(tmp_path):
    _, local = plans("ha", tmp_path)
    template, _copy = local["valkey-sentinel1"].writable_copy
    source = (REPO_ROOT / "sentinel" / "sentinel.conf").read_text()
    assert template.read_text() == source.replace("valkey-master 6379", "127.0.0.1 6379").replace(
        "bind 0.0.0.0", "bind 127.0.0.1")  # local processes listen on loopback only


@pytest.mark.integration
def test_running_local_stack_has_the_compose_settings(ha_stack):
    topology = load_topology("ha")
    for name, service in topology.services.items():
        client = redis.Redis(port=ha_stack.service(name).port, decode_responses=True)
        if service.kind == "sentinel":
            master = client.sentinel_master("myvalkey")
            assert (master["quorum"], master["down-after-milliseconds"], master["failover-timeout"]) == (
                2, 2000, 10000), name
        else:
            config = client.config_get("repl-diskless-sync-delay")
            assert config["repl-diskless-sync-delay"] == "0", name
            role = client.info("replication")["role"]
            assert role == ("master" if name == "valkey-master" else "slave"), name


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_compose_file_validates(compose_file):
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (.ci/run installs it)")
    proc = subprocess.run([tool, "-f", compose_file, "config", "-q"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_compose_ports_bind_loopback_only():
    import yaml

    spec = yaml.safe_load((REPO_ROOT / "docker-compose.ha.yml").read_text())
    for name, body in spec["services"].items():
        for entry in body.get("ports", []):
            assert str(entry).startswith("127.0.0.1:"), (name, entry)
