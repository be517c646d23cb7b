"""One server process: start it in its own session, know whether it lives, stop it for sure."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _death_signal_setter(parent_pid: int) -> Callable[[], None]:
    """A preexec_fn: the kernel SIGKILLs the child when parent_pid dies.

    libc is loaded here, in the parent: loading a library between fork and exec can deadlock. If
    the parent died before prctl ran, no signal would ever come, so the child kills itself.
    """
    prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl

    def die_with_parent() -> None:  # runs in the child between fork and exec
        with contextlib.suppress(OSError):
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)

    return die_with_parent


def spawn(argv: list[str] | tuple[str, ...], *, log: Path, cwd: Path, tie_to_parent: bool) -> int:
    """Start argv with output to log; return its pid.

    A new session gives it its own process group, so stopping it never signals us. tie_to_parent
    makes the kernel kill it if this process dies (crash, SIGKILL), so a test run that dies leaves
    nothing behind; a detached `stack.py up` leaves it off so the stack outlives the command.
    The kernel ties a child to the *thread* that forked it, so outside the main thread the tie is
    left off (it would kill the server when that thread ends); stack.down() still stops it.
    """
    tie = tie_to_parent and threading.current_thread() is threading.main_thread()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=cwd, start_new_session=True,
                                preexec_fn=_death_signal_setter(os.getpid()) if tie else None)
    _children[proc.pid] = proc
    return proc.pid


def start_command(argv: list[str], *, env: Mapping[str, str]) -> subprocess.Popen:
    """Start a user's command that dies with us (stack.py run's COMMAND).

    It stays in our process group and keeps our stdin/stdout, so it is interactive and a Ctrl-C in
    the terminal reaches it; the kernel SIGKILLs it if we die, so a killed `run` orphans nothing.
    """
    proc = subprocess.Popen(argv, env=dict(env), preexec_fn=_death_signal_setter(os.getpid()))
    _children[proc.pid] = proc
    return proc


_children: dict[int, subprocess.Popen] = {}


def is_alive(pid: int | None) -> bool:
    """True while pid runs; a zombie (exited, not yet reaped) counts as dead."""
    if not pid:
        return False
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def exit_code(pid: int) -> int | None:
    child = _children.get(pid)
    return child.poll() if child is not None else None


def signal_process(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_dead(pid: int, timeout: float) -> bool:
    """Wait until pid is gone (reaping it if it is our child); False if it still runs."""
    child = _children.get(pid)
    if child is not None:
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    deadline = time.monotonic() + timeout
    while is_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)  # polling a condition (the pid's state) with a deadline
    return True


def stop(pid: int, grace: float = 3.0) -> None:
    """SIGTERM, a grace period, then SIGKILL; returns once the process is gone."""
    if not is_alive(pid):
        wait_dead(pid, 0.5)
        return
    signal_process(pid, signal.SIGTERM)
    if not wait_dead(pid, grace):
        signal_process(pid, signal.SIGKILL)
        wait_dead(pid, 5.0)


def kill(pid: int) -> None:
    """SIGKILL, like `docker kill`; returns once the process is gone."""
    signal_process(pid, signal.SIGKILL)
    wait_dead(pid, 5.0)


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def working_under(directory: Path) -> dict[int, Path]:
    """Live processes whose working directory is directory or below it, with that directory.

    Every service runs in its data dir, so this finds a stack's processes even when no pid was
    recorded (a restart that crashed before saving, or two restarts saving at once).
    """
    root = Path(directory).resolve()
    found: dict[int, Path] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if (cwd == root or root in cwd.parents) and is_alive(int(entry.name)):
            found[int(entry.name)] = cwd
    return found
