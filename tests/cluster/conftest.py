"""Helpers for the cluster tests: the init job as a module and as a command (cluster_stack: tests/conftest.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from lib.launcher.local_stack import LocalStack
from lib.topology.topology import load_topology, local_plan, server_binaries
from lib.util import REPO_ROOT


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
