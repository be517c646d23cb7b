"""Shared fixtures: real local stacks on free ports, always stopped, with a check that nothing survives."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lib.launcher import process
from lib.launcher.local_stack import STATE_FILE, LocalStack
from lib.topology.topology import load_topology
from lib.util import REPO_ROOT, free_ports


def start_stack(topology_name: str, state_dir: Path, *, bus_offset: int | None = None) -> LocalStack:
    """The topology from its compose file, every port replaced by a free one, tied to this process."""
    topology = load_topology(topology_name)
    ports = [s.port for s in topology.services.values() if s.port]
    port_map = dict(zip(ports, free_ports(len(ports), also_free_offset=bus_offset), strict=True))
    return LocalStack(topology, state_dir, port_map, tie_to_parent=True).up(timeout=60)


def recorded_pids(stack: LocalStack) -> set[int]:
    """Pids in memory and on disk (a script under test may have restarted a service meanwhile).

    Only a missing state file means "nothing more on disk"; a state file that cannot be read is an
    error here, because the pids it hides are exactly the ones the "nothing left running" check needs.
    """
    pids = {svc.pid for svc in stack.services.values() if svc.pid}
    if (stack.state_dir / STATE_FILE).exists():
        pids |= {svc.pid for svc in LocalStack.load(stack.state_dir).services.values() if svc.pid}
    return pids


def assert_all_stopped(pids: set[int]) -> None:
    alive = sorted(pid for pid in pids if process.is_alive(pid))
    assert not alive, f"processes left running: {alive}"


@contextlib.contextmanager
def running_stack(topology_name: str, state_dir: Path, *, bus_offset: int | None = None) -> Iterator[LocalStack]:
    """A local stack for one test (or module): always stopped, and checked that nothing survived."""
    stack = start_stack(topology_name, state_dir, bus_offset=bus_offset)
    try:
        yield stack
    finally:
        pids = recorded_pids(stack)
        stack.down()
        assert_all_stopped(pids)


@pytest.fixture
def ha_stack(tmp_path):
    with running_stack("ha", tmp_path / "ha") as stack:
        yield stack


def saved_op_end(op: dict) -> float:
    """When an op of a saved history (lib.report.timeline.history_to_dict) finished, in seconds from the fault."""
    return op["t_s"] + op["ms"] / 1000


def outage_in_saved_ops(ops: list[dict]) -> tuple[float, float]:
    """(last ok end, first ok end) around the first failures after the fault, read from a saved history by
    the tests themselves, so that lib.checks.checker and lib.report.timeline are checked against a second
    computation."""
    ops = sorted(ops, key=lambda op: op["t_s"])
    first_failed = next(i for i, op in enumerate(ops) if op["outcome"] != "ok" and saved_op_end(op) >= 0
                        and any(o["outcome"] == "ok" for o in ops[:i]))
    last_ok = max(saved_op_end(op) for op in ops[:first_failed] if op["outcome"] == "ok")
    first_ok = next(saved_op_end(op) for op in ops[first_failed:] if op["outcome"] == "ok")
    return last_ok, first_ok


def first_events(history: dict) -> dict[str, float]:
    """event name -> when it was first seen (each sentinel announces the same event), from a saved history."""
    seen: dict[str, float] = {}
    for event in sorted(history["events"], key=lambda e: e["t_s"]):
        seen.setdefault(event["event"], event["t_s"])
    return seen


def run_script(script: str, *args: str, state_dir: Path | None = None, timeout: float = 240,
               env: dict | None = None) -> subprocess.CompletedProcess:
    """python app/SCRIPT ARGS from the repo root, as a user runs it (stdin closed, no tty)."""
    full_env = dict(os.environ, **(env or {}), COLUMNS="160")
    if state_dir is not None:
        full_env["VHC_STACK_STATE"] = str(state_dir)
    return subprocess.run([sys.executable, f"app/{script}", *args], cwd=REPO_ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
