"""What a run of this checkout left running, found by the marker make puts in the environment of everything it starts.

The Makefile exports VHC_CHECKOUT=<the checkout>; every process a test, a suite or a stack starts inherits it (the
launcher passes the environment on). After `make test` (and, in CI, after `make demo`) this lists every live process
that carries this checkout's marker, other than itself and its ancestors, waits a little for any still exiting,
then stops what is left and exits 1 naming each one. A server restarted by a suite and never tied to the stack's
owner would otherwise outlive the run without anyone noticing (issue 23: seen once on a fresh clone).

    python tests/leftover_processes.py [--checkout DIR] [--grace SECONDS]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

MARKER = "VHC_CHECKOUT"
GRACE_S = 10.0  # a process that is still shutting down (a stack's last server, a client's worker) gets this long


def ancestors(pid: int) -> set[int]:
    """pid and every process above it."""
    seen = set()
    while pid > 0 and pid not in seen:
        seen.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return seen


def _marked(pid: int, checkout: str) -> str | None:
    """The command line of a live (not zombie) process that carries checkout's marker, else None."""
    try:
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return None
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if f"{MARKER}={checkout}".encode() not in environ:
            return None
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except (OSError, IndexError):
        return None  # gone meanwhile, or not ours to read


def leftovers(checkout: str, *, exclude: set[int] | None = None) -> dict[int, str]:
    """pid -> command line of every live process carrying checkout's marker, but those in exclude."""
    skip = exclude if exclude is not None else ancestors(os.getpid())
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) not in skip and (cmd := _marked(int(entry.name), checkout)):
            found[int(entry.name)] = cmd
    return found


def settle(checkout: str, grace: float = GRACE_S) -> dict[int, str]:
    """The leftovers once those still exiting had up to `grace` seconds to go (polled, not slept through)."""
    deadline = time.monotonic() + grace
    found = leftovers(checkout)
    while found and time.monotonic() < deadline:
        time.sleep(0.2)  # polling a condition with a deadline: /proc has no notification to wait on
        found = leftovers(checkout)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fail when processes of this checkout are still running.")
    parser.add_argument("--checkout", default=os.environ.get(MARKER) or str(Path(__file__).resolve().parents[1]),
                        help="the checkout whose processes to look for (default: $VHC_CHECKOUT, else this one)")
    parser.add_argument("--grace", type=float, default=GRACE_S, help="seconds to let exiting processes go (10)")
    args = parser.parse_args(argv)
    found = settle(args.checkout, args.grace)
    if not found:
        print(f"nothing of {args.checkout} is left running")
        return 0
    print(f"{len(found)} process(es) of {args.checkout} still running after the run (stopped now):", file=sys.stderr)
    for pid, cmd in sorted(found.items()):
        print(f"  pid {pid}: {cmd[:300]}", file=sys.stderr)
        with contextlib.suppress(OSError):  # gone meanwhile
            os.kill(pid, signal.SIGKILL)
    return 1


if __name__ == "__main__":
    sys.exit(main())
