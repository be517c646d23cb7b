"""Fixtures for the compatibility suite: a real local Redis + Valkey pair on free ports, always stopped.

No silent skips: without a redis-server the integration tests fail and say how to install one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from conftest import running_stack  # tests/conftest.py
from lib.launcher.local_stack import LocalStack
from lib.topology.topology import REDIS_SERVER_HINT, find_redis_server
from lib.util import REPO_ROOT

# Variables that would point the runner at some other stack than the one a test started.
TARGET_ENV_VARS = ("VHC_STACK_STATE", "VHC_TARGETS")


@pytest.fixture(scope="module")
def compat_stack(tmp_path_factory):
    """docker-compose.yml's redis and valkey as local processes on free ports, tied to this process."""
    if find_redis_server() is None:
        pytest.fail(f"the compat tests need a local redis-server: {REDIS_SERVER_HINT}", pytrace=False)
    with running_stack("compat", tmp_path_factory.mktemp("compat") / "stack") as stack:
        yield stack


def client_for(stack: LocalStack, service: str) -> redis.Redis:
    return redis.Redis(port=stack.service(service).port, decode_responses=True, socket_timeout=10)


def run_runner(*args: str, state_dir: Path | None = None, timeout: float = 120,
               extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """python app/test_runner.py ARGS as a user runs it; $VHC_STACK_STATE only when state_dir is given."""
    env = {k: v for k, v in os.environ.items() if k not in TARGET_ENV_VARS} | (extra_env or {})
    env["COLUMNS"] = "200"
    if state_dir is not None:
        env["VHC_STACK_STATE"] = str(state_dir)
    return subprocess.run([sys.executable, "app/test_runner.py", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
