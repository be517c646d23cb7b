"""The compose launcher's decisions, without a Docker engine: readiness, failures, image settings."""

from __future__ import annotations

import pytest

import lib.launcher.compose_stack as compose_stack
from lib.errors import SetupError
from lib.launcher.compose_stack import ComposeStack, compose_failure, image_settings
from lib.waits import WaitTimeout

BUSY_PORT = """Creating compat-redis ... error
ERROR: for compat-redis  Cannot start service redis: driver failed programming external connectivity on endpoint
compat-redis (abc): Error starting userland proxy: listen tcp4 127.0.0.1:6379: bind: address already in use
ERROR: Encountered errors while bringing up the project."""


def test_a_busy_port_is_named_with_the_fix():
    text = compose_failure(BUSY_PORT)
    assert "port 6379 is busy" in text and "ss -ltnp 'sport = :6379'" in text, text
    assert not text.startswith("["), f"the reason is text, not a Python list: {text}"


def test_waiting_for_a_stack_nobody_started_fails_at_once(monkeypatch):
    monkeypatch.setattr(compose_stack, "_container_state", lambda name: None)
    with pytest.raises(SetupError, match="no container of docker-compose.ha.yml exists: start the stack first"):
        ComposeStack("ha").wait_ready(timeout=120)


def test_a_failed_init_job_ends_the_wait_with_its_exit_code(monkeypatch):
    states = {"cluster-init": {"Status": "exited", "ExitCode": 3, "Running": False}}
    healthy = {"Status": "running", "Running": True, "Health": {"Status": "healthy"}}
    monkeypatch.setattr(compose_stack, "_container_state", lambda name: states.get(name, healthy))
    stack = ComposeStack("cluster")
    monkeypatch.setattr(stack, "logs_tail", lambda lines=12: "(logs)")
    with pytest.raises(WaitTimeout, match="cluster-init exited with 3"):
        stack.wait_ready(timeout=30)


def test_ready_means_every_healthcheck_healthy_and_the_job_exited_0(monkeypatch):
    states = {"cluster-init": {"Status": "exited", "ExitCode": 0}}
    healthy = {"Status": "running", "Running": True, "Health": {"Status": "healthy"}}
    monkeypatch.setattr(compose_stack, "_container_state", lambda name: states.get(name, healthy))
    seen = ComposeStack("cluster").wait_ready(timeout=5)
    assert "cluster-init: exited (exit 0)" in seen and seen.count("healthy") == 6, seen


def test_image_settings_read_the_env_file_and_skip_comments(tmp_path):
    env = tmp_path / "images.env"
    env.write_text("# written by the builder\nVALKEY_IMAGE=vhc-local/valkey:9.0.0\n\n"
                   "REDIS_IMAGE=vhc-local/redis:7.0.15\n")
    assert image_settings(env) == {"VALKEY_IMAGE": "vhc-local/valkey:9.0.0", "REDIS_IMAGE": "vhc-local/redis:7.0.15"}
    assert image_settings(tmp_path / "missing.env") == {}
