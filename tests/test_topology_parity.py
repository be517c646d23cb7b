"""Compose and local must not drift: same services, ports, commands and settings.

The local stack is derived from the compose file, so drift can only come from the translation:
these tests compare it with command lines written out by hand (hostnames -> 127.0.0.1, container
paths -> local files, ports -> the mapped ones), check that each compose healthcheck waits for what
the launcher's readiness check waits for, and that a running local stack has the compose settings.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import redis
import yaml

from lib.topology.topology import load_topology, local_plan, own_address
from lib.util import REPO_ROOT
from unit.readiness_recorder import LINK_UP, SENTINEL_MASTERS, healthcheck_condition, readiness_waits

COMPOSE_FILES = ["docker-compose.ha.yml"]


# Non-trivial on purpose: with an empty map a wrong port translation would go unnoticed.
PORTS = {6379: 41001, 6380: 41002, 6381: 41003, 26379: 41011, 26380: 41012, 26381: 41013}
FAKE_BINARIES = {"valkey-server": "VALKEY", "redis-server": "REDIS", "python": "PYTHON"}


def plans(tmp_path) -> dict:
    topology = load_topology("ha")
    return {s.name: local_plan(topology, s, stack_dir=tmp_path, port_map=PORTS, binaries=FAKE_BINARIES)
            for s in topology.services.values()}


def compose_part(plan) -> list[str]:
    """The argv without the local-only tail (plan.local_args), which test_local_only_settings_* pins."""
    return list(plan.argv[:len(plan.argv) - len(plan.local_args)])


def test_ha_topology_has_the_six_services():
    assert set(load_topology("ha").services) == {"valkey-master", "valkey-replica1", "valkey-replica2",
                                                 "valkey-sentinel1", "valkey-sentinel2", "valkey-sentinel3"}


def test_local_commands_are_the_compose_commands_on_loopback_with_the_mapped_ports(tmp_path):
    local = plans(tmp_path)
    assert compose_part(local["valkey-master"]) == [
        "VALKEY", f"{tmp_path}/rendered/valkey-master/valkey.conf", "--port", "41001", "--dir",
        f"{tmp_path}/valkey-master", "--replica-announce-ip", "127.0.0.1"], "valkey-master"
    assert compose_part(local["valkey-replica1"]) == [
        "VALKEY", f"{tmp_path}/rendered/valkey-replica1/valkey.conf", "--port", "41002", "--dir",
        f"{tmp_path}/valkey-replica1", "--replica-announce-ip", "127.0.0.1", "--replicaof", "127.0.0.1", "41001"], \
        "valkey-replica1 replicates from the master's mapped port"
    assert compose_part(local["valkey-sentinel1"]) == [
        "VALKEY", f"{tmp_path}/valkey-sentinel1/sentinel.conf", "--sentinel", "--port", "41011", "--dir",
        f"{tmp_path}/valkey-sentinel1", "--sentinel", "announce-ip", "127.0.0.1", "--sentinel", "announce-port",
        "41011"], "valkey-sentinel1 announces its mapped port"
    assert local["valkey-sentinel1"].writable_copy == (tmp_path / "rendered" / "valkey-sentinel1" / "sentinel.conf",
                                                       tmp_path / "valkey-sentinel1" / "sentinel.conf"), \
        "the entrypoint's TEMPLATE COPY, as local files"


def test_local_only_settings_give_each_service_its_own_source_address_and_nothing_else(tmp_path):
    """Allowed drift, local only: in compose every container has its own IP; locally the services share
    127.0.0.1 with the harness, so each also listens on and sends from its own loopback address (a partition
    cuts those with iptables, lib/faults/partition.py). What they announce stays 127.0.0.1."""
    for name, plan in plans(tmp_path).items():
        own = own_address(plan.port)
        assert plan.local_args == ("--bind", "127.0.0.1", own, "--bind-source-addr", own), name
        assert plan.argv[-len(plan.local_args):] == plan.local_args, f"{name}: appended, so they win over the config"
    assert own_address(41001) == "127.160.41.2" and len({own_address(p) for p in PORTS.values()}) == len(PORTS), \
        "one address per port, never 127.0.0.1"


def test_every_service_listens_on_its_mapped_port(tmp_path):
    ports = {name: plan.port for name, plan in plans(tmp_path).items()}
    assert ports == {"valkey-master": 41001, "valkey-replica1": 41002, "valkey-replica2": 41003,
                     "valkey-sentinel1": 41011, "valkey-sentinel2": 41012, "valkey-sentinel3": 41013}, ports


def test_rendered_configs_differ_only_in_the_master_address_and_the_bind_address(tmp_path):
    local = plans(tmp_path)
    template, _copy = local["valkey-sentinel1"].writable_copy
    source = (REPO_ROOT / "sentinel" / "sentinel.conf").read_text()
    assert "sentinel monitor myvalkey valkey-master 6379 2\n" in source, "the compose file's monitor line"
    assert template.read_text() == source.replace("valkey-master 6379", "127.0.0.1 41001").replace(
        "bind 0.0.0.0", "bind 127.0.0.1"), "local sentinels monitor the master's mapped port, on loopback"
    server_conf = (REPO_ROOT / "valkey" / "valkey.conf").read_text()
    rendered = (tmp_path / "rendered" / "valkey-master" / "valkey.conf").read_text()
    assert rendered == server_conf.replace("bind 0.0.0.0", "bind 127.0.0.1"), "valkey.conf: only the bind address"


def test_compose_healthchecks_wait_for_what_the_local_launcher_waits_for(tmp_path, monkeypatch):
    """docker-compose up --wait and stack.py up must call the stack ready on the same conditions."""
    spec = yaml.safe_load((REPO_ROOT / "docker-compose.ha.yml").read_text())["services"]
    assert spec["valkey-master"]["healthcheck"]["test"] == ["CMD", "valkey-cli", "-p", "6379", "ping"]
    assert spec["valkey-replica2"]["healthcheck"]["test"] == [
        "CMD-SHELL", "valkey-cli -p 6381 info replication | grep -q master_link_status:up"]
    waited = readiness_waits("ha", tmp_path, PORTS, monkeypatch).waited_for()
    monitored = re.search(r"^sentinel monitor (\S+) ", (REPO_ROOT / "sentinel" / "sentinel.conf").read_text(), re.M)[1]
    for name, service in load_topology("ha").services.items():
        condition, port, master_name = healthcheck_condition(spec[name]["healthcheck"]["test"])
        assert port == service.port, f"{name}'s healthcheck asks port {port}, the service listens on {service.port}"
        assert condition in waited[name], f"{name}: compose waits for {condition}, the launcher for {waited[name]}"
        assert master_name in (None, monitored), f"{name}'s healthcheck asks for {master_name}, sentinels monitor " \
                                                 f"{monitored}"
    assert waited["valkey-replica1"] == ["PING", LINK_UP] and waited["valkey-sentinel3"] == ["PING", SENTINEL_MASTERS]


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
    spec = yaml.safe_load((REPO_ROOT / "docker-compose.ha.yml").read_text())
    for name, body in spec["services"].items():
        for entry in body.get("ports", []):
            assert str(entry).startswith("127.0.0.1:"), (name, entry)
