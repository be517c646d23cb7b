"""docker-compose.yml and the local compat stack must not drift: commands written out by hand, healthchecks."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from lib.errors import SetupError
from lib.topology.topology import load_topology, local_plan
from lib.util import REPO_ROOT
from unit.readiness_recorder import PING, healthcheck_condition, readiness_waits

from .conftest import client_for

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
FAKE_BINARIES = {"valkey-server": "VALKEY", "redis-server": "REDIS"}


def test_compat_services_ports_and_programs():
    topology = load_topology("compat")
    assert {n: (s.port, s.command[0], s.kind) for n, s in topology.services.items()} == {
        "redis": (6379, "redis-server", "server"), "valkey": (6380, "valkey-server", "server")}


def test_compose_images_are_pinned_and_ports_bind_loopback_only():
    spec = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    assert spec["redis"]["image"] == "${REDIS_IMAGE:-redis:7.2.6}"
    assert spec["valkey"]["image"] == "${VALKEY_IMAGE:-valkey/valkey:9.0.0}"
    for name, body in spec.items():
        assert all(str(p).startswith("127.0.0.1:") for p in body["ports"]), (name, body["ports"])
        assert body.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_local_commands_are_the_compose_commands_on_loopback_with_the_mapped_ports(tmp_path):
    topology = load_topology("compat")
    ports = {6379: 43001, 6380: 43002}  # non-trivial: an empty map would hide a wrong port translation
    local = {name: local_plan(topology, service, stack_dir=tmp_path, port_map=ports, binaries=FAKE_BINARIES)
             for name, service in topology.services.items()}
    assert list(local["redis"].argv) == ["REDIS", "--port", "43001", "--bind", "127.0.0.1", "--protected-mode", "no",
                                         "--save", "", "--appendonly", "no", "--dir", f"{tmp_path}/redis"], "redis"
    assert list(local["valkey"].argv) == ["VALKEY", "--port", "43002", "--bind", "127.0.0.1", "--protected-mode",
                                          "no", "--save", "", "--appendonly", "no", "--dir", f"{tmp_path}/valkey"], \
        "valkey"
    assert (local["redis"].port, local["valkey"].port) == (43001, 43002), "each server on its mapped port"


def test_compose_healthchecks_wait_for_what_the_local_launcher_waits_for(tmp_path, monkeypatch):
    spec = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    assert spec["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "-p", "6379", "ping"]
    assert spec["valkey"]["healthcheck"]["test"] == ["CMD", "valkey-cli", "-p", "6380", "ping"]
    waited = readiness_waits("compat", tmp_path, {6379: 43001, 6380: 43002}, monkeypatch).waited_for()
    for name, service in load_topology("compat").services.items():
        condition, port, _ = healthcheck_condition(spec[name]["healthcheck"]["test"])
        assert port == service.port, f"{name}'s healthcheck asks port {port}, the service listens on {service.port}"
        assert waited[name] == [condition] == [PING], f"{name}: compose waits for {condition}, the launcher for " \
                                                      f"{waited[name]}"


def test_missing_redis_server_says_how_to_install_it(tmp_path):
    topology = load_topology("compat")
    with pytest.raises(SetupError, match="apt-get install redis-server.*REDIS_SERVER_BIN"):
        local_plan(topology, topology.services["redis"], stack_dir=tmp_path, port_map={},
                   binaries={"valkey-server": "VALKEY"})


def test_compose_file_validates():
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (.ci/run installs it)")
    proc = subprocess.run([tool, "-f", "docker-compose.yml", "config", "-q"], cwd=REPO_ROOT, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.integration
def test_running_local_stack_has_the_compose_settings(compat_stack):
    for name in ("redis", "valkey"):
        config = client_for(compat_stack, name).config_get("*")
        assert (config["save"], config["appendonly"], config["protected-mode"]) == ("", "no", "no"), name
        assert config["port"] == str(compat_stack.service(name).port), name
        assert config["bind"].split()[0] == "127.0.0.1", f"{name} must listen on loopback only locally"
    assert "valkey_version" in client_for(compat_stack, "valkey").info("server")
    assert "valkey_version" not in client_for(compat_stack, "redis").info("server")
