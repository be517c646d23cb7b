"""tests/conftest.py's recorded_pids, which the "nothing left running" check relies on: it may not hide errors."""

from __future__ import annotations

import pytest

from conftest import recorded_pids  # tests/conftest.py
from lib.errors import SetupError
from lib.launcher.local_stack import STATE_FILE, LocalStack, ServiceState
from lib.topology.topology import load_topology


def stack_with_pid(state_dir, pid: int) -> LocalStack:
    stack = LocalStack(load_topology("compat"), state_dir, {}, tie_to_parent=False)
    stack.services = {"valkey": ServiceState("valkey", "server", 6380, ["valkey-server"], str(state_dir / "valkey"),
                                             str(state_dir / "valkey.log"), pid=pid)}
    return stack


def test_without_a_state_file_the_pids_in_memory_are_all(tmp_path):
    assert recorded_pids(stack_with_pid(tmp_path, 4101)) == {4101}, "nothing on disk yet"


def test_pids_on_disk_are_added_to_the_ones_in_memory(tmp_path):
    stack_with_pid(tmp_path, 4102).save()  # e.g. a script under test restarted the service
    assert recorded_pids(stack_with_pid(tmp_path, 4101)) == {4101, 4102}, "memory and disk"


def test_an_unreadable_state_file_is_an_error_not_an_empty_set(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / STATE_FILE).write_text("{not json")
    with pytest.raises((SetupError, ValueError)):
        recorded_pids(stack_with_pid(tmp_path, 4101))
