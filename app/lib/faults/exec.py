"""The user's own commands as the fault: --kill-cmd injects it, --restore-cmd heals it.

For platforms the harness does not launch (kubectl delete pod, systemctl kill, an iptables rule, kill -STOP):
the harness only runs the commands and measures as usual, so every check works anywhere unchanged.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass

from lib.errors import SetupError
from lib.faults.fault import Fault

COMMAND_TIMEOUT_S = 120.0


@dataclass
class ExecFault(Fault):
    kill_cmd: str
    restore_cmd: str | None = None
    can_restore = True

    @property
    def description(self) -> str:
        return f"exec: {self.kill_cmd}"

    def inject(self) -> None:
        run_user_command(self.kill_cmd, "--kill-cmd")

    def restore(self, timeout: float) -> bool:
        if not self.restore_cmd:
            return False
        run_user_command(self.restore_cmd, "--restore-cmd", timeout=max(timeout, COMMAND_TIMEOUT_S))
        return True


def check_command(command: str | None, flag: str) -> None:
    """Refuse, before any server is touched, a command that is empty or cannot be parsed by the shell."""
    if command is None or not command.strip():
        raise SetupError(f"{flag} is empty: give the command that {'injects' if 'kill' in flag else 'heals'} "
                         f"the fault, e.g. {flag} 'kubectl delete pod valkey-0'")
    try:
        shlex.split(command)
    except ValueError as exc:
        raise SetupError(f"{flag} {command!r}: {exc}") from None


def run_user_command(command: str, flag: str, timeout: float = COMMAND_TIMEOUT_S) -> str:
    """Run it with the shell; a non-zero exit or a timeout is a one-line SetupError with its output."""
    try:
        proc = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=timeout)  # noqa: S602
    except subprocess.TimeoutExpired:
        raise SetupError(f"{flag} {command!r} did not finish within {timeout:.0f}s") from None
    if proc.returncode != 0:
        output = " ".join((proc.stderr or proc.stdout).split())[:200]
        raise SetupError(f"{flag} {command!r} exited with {proc.returncode}: {output or 'no output'}")
    return proc.stdout
