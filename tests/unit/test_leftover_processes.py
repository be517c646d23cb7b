"""tests/leftover_processes.py: what `make test` runs last, so that nothing of the checkout outlives it."""

from __future__ import annotations

import os
import subprocess
import sys

import leftover_processes
from lib.util import REPO_ROOT


def marked_sleeper(checkout: str) -> subprocess.Popen:
    return subprocess.Popen(["sleep", "60"], env=dict(os.environ, VHC_CHECKOUT=checkout))


def test_a_process_carrying_the_checkouts_marker_is_found_and_another_checkouts_is_not(tmp_path):
    mine, other = marked_sleeper(str(tmp_path)), marked_sleeper(str(tmp_path / "other"))
    try:
        found = leftover_processes.leftovers(str(tmp_path))
        assert mine.pid in found and found[mine.pid] == "sleep 60", f"the marked sleeper is ours: {found}"
        assert other.pid not in found, "a process of another checkout is not this one's"
    finally:
        for proc in (mine, other):
            proc.kill()
            proc.wait()
    assert mine.pid not in leftover_processes.leftovers(str(tmp_path)), "a reaped process is not left over"


def test_the_script_stops_what_was_left_names_it_and_exits_1(tmp_path):
    left = marked_sleeper(str(tmp_path))
    try:
        proc = subprocess.run([sys.executable, str(REPO_ROOT / "tests" / "leftover_processes.py"), "--checkout",
                               str(tmp_path), "--grace", "0.3"], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert f"pid {left.pid}: sleep 60" in proc.stderr, proc.stderr
        assert left.wait(timeout=10) == -9, "the leftover was stopped (SIGKILL)"
    finally:
        if left.poll() is None:
            left.kill()
            left.wait()


def test_the_script_passes_when_nothing_is_left(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "tests" / "leftover_processes.py"), "--checkout",
                           str(tmp_path), "--grace", "0"], capture_output=True, text=True, timeout=30)
    assert (proc.returncode, proc.stdout.strip()) == (0, f"nothing of {tmp_path} is left running"), proc.stderr
