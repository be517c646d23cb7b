"""docker-compose.yml and the local compat stack must not drift: same services, ports, commands, settings."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from lib.report import SetupError
from lib.topology import load_topology, local_plan
from lib.util import REPO_ROOT

from .conftest import client_for

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
FAKE_BINARIES = {"valkey-server": "VALKEY", "redis-server": "REDIS"}


def test_compat_services_ports_and_programs():
    topology = load_topology("compat")
    assert {n: (s.port, s.command[0], s.kind) for n, s in topology.services.items()} == {
        "redis": (6379, "redis-server", "server"), "valkey": (6380, "valkey-server", "server")}


def test_compose_images_are_pinned_and_ports_bind_loopback_only():
    spec = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    assert spec["redis"]["image"] == "redis:7.2.6"
    assert spec["valkey"]["image"] == "${VALKEY_IMAGE:-valkey/valkey:9.0.0}"
    for name, body in spec.items():
        assert all(str(p).startswith("127.0.0.1:") for p in body["ports"]), (name, body["ports"])
        assert body.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_local_plan_is_the_compose_command(tmp_path):
    topology = load_topology("compat")
    for name, service in topology.services.items():
        plan = local_plan(topology, service, stack_dir=tmp_path, port_map={}, binaries=FAKE_BINARIES)
        expected = [FAKE_BINARIES[service.command[0]]]
        for token in service.command[1:]:
            expected.append({"0.0.0.0": "127.0.0.1", "/data": str(tmp_path / name)}.get(token, token))
        assert list(plan.argv) == expected, name
        assert plan.port == service.port


def test_local_plan_with_free_ports_changes_only_the_port(tmp_path):
    topology = load_topology("compat")
    plan = local_plan(topology, topology.services["valkey"], stack_dir=tmp_path, port_map={6380: 41234},
                      binaries=FAKE_BINARIES)
    assert plan.argv[plan.argv.index("--port") + 1] == "41234" and plan.port == 41234


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
