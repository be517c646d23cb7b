"""Fixtures for the cluster tests: a real six-node local cluster on free ports, always stopped."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from conftest import running_stack  # tests/conftest.py
from lib.launcher.local_stack import LocalStack
from lib.topology.topology import load_topology, local_plan, server_binaries
from lib.util import REPO_ROOT

BUS_PORT_OFFSET = 10000


def load_init_module():
    """cluster-init/init.py as a module (its directory name is not importable)."""
    spec = importlib.util.spec_from_file_location("cluster_init", REPO_ROOT / "cluster-init" / "init.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["cluster_init"] = module
    spec.loader.exec_module(module)
    return module


def init_argv(stack: LocalStack) -> list[str]:
    """The init job's command for this stack, translated to its ports as the launcher does it."""
    topology = load_topology("cluster")
    plan = local_plan(topology, topology.services["cluster-init"], stack_dir=stack.state_dir,
                      port_map=stack.port_map, binaries=server_binaries())
    return list(plan.argv)


def run_init(stack: LocalStack) -> subprocess.CompletedProcess:
    return subprocess.run(init_argv(stack), capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def cluster_stack(tmp_path_factory):
    """One cluster per test module (bring-up ~4 s); the modules' tests read the topology, so a
    failover done by one test does not break the next."""
    with running_stack("cluster", tmp_path_factory.mktemp("cluster") / "stack", bus_offset=BUS_PORT_OFFSET) as stack:
        yield stack
