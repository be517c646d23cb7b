"""One server process: start it in its own session, know whether it lives, stop it for sure."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(argv: list[str] | tuple[str, ...], *, log: Path, cwd: Path, tie_to_parent: bool) -> int:
    """Start argv with output to log; return its pid.

    A new session gives it its own process group, so stopping it never signals us. tie_to_parent
    makes the kernel kill it if this process dies (crash, SIGKILL), so a test run that dies leaves
    nothing behind; a detached `stack.py up` leaves it off so the stack outlives the command.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=cwd, start_new_session=True,
                                preexec_fn=_die_with_parent if tie_to_parent else None)
    _children[proc.pid] = proc
    return proc.pid


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
