"""Your own commands as the fault: --kill-cmd injects it, --restore-cmd heals it.

For platforms the harness does not launch (kubectl delete pod, systemctl kill, an iptables rule, kill -STOP): the
harness runs the commands and measures as usual, so every check works anywhere unchanged. Without --restore-cmd the
fault is healed by you (or by your orchestrator): the harness waits until the primary answers again. --fault-file
PATH (docs/faults.md) is the same idea in Python, for cuts that need more than two shell commands.
"""

from __future__ import annotations

import shlex
import subprocess

from lib.errors import SetupError
from lib.faults.fault import OWNED, Fault, FaultContext, WaitNotice
from lib.ha_client import answers
from lib.util import format_endpoint
from lib.waits import WaitTimeout, wait_until

COMMAND_TIMEOUT_S = 120.0


class Exec(Fault):
    name = "exec"
    help = "your own commands: --kill-cmd injects the fault (kubectl delete pod ...), --restore-cmd heals it"
    target = "whatever your commands hit (the primary is watched)"
    unattended = False
    options = ("kill_cmd", "restore_cmd")
    roles_put_back = {"cluster": OWNED}  # on servers the harness started, the cluster's roles are put back
    short_rejoin_timers = OWNED
    short_timers_after_failover = OWNED

    def __init__(self, ctx: FaultContext, kill_cmd: str, restore_cmd: str | None):
        self.ctx, self.kill_cmd, self.restore_cmd = ctx, kill_cmd, restore_cmd
        self.healed_by_person = not restore_cmd  # the run gives the person --manual-timeout to heal it

    @classmethod
    def check_options(cls, options: dict) -> None:
        check_command(options.get("kill_cmd"), "--kill-cmd")
        if options.get("restore_cmd") is not None:
            check_command(options["restore_cmd"], "--restore-cmd")

    @classmethod
    def build(cls, ctx: FaultContext) -> Exec:
        cls.check_options(ctx.options)
        return cls(ctx, str(ctx.options["kill_cmd"]), ctx.options.get("restore_cmd"))

    @property
    def description(self) -> str:
        return f"exec: {self.kill_cmd}"

    def inject(self) -> None:
        run_user_command(self.kill_cmd, "--kill-cmd")

    def heal(self, timeout: float) -> bool:
        if self.restore_cmd:
            run_user_command(self.restore_cmd, "--restore-cmd", timeout=max(timeout, COMMAND_TIMEOUT_S))
            return True
        primary = format_endpoint(*self.ctx.primary.announced)
        if self.ctx.notify is not None:
            self.ctx.notify(WaitNotice("restart", f"now heal the fault of --kill-cmd: {primary} must answer again (no "
                                       f"--restore-cmd was given); waiting up to {timeout:.0f}s", timeout))
        try:
            wait_until(lambda: (answers(self.ctx.primary.reachable, self.ctx.password, 0.3), "not answering yet"),
                       timeout=timeout, what=f"{primary} to answer again")
        except WaitTimeout:
            return False
        return True

    def undo(self, timeout: float = 60.0) -> str | None:
        if self.pending_heal and not self.restore_cmd:
            return (f"the fault came from --kill-cmd {self.kill_cmd!r} and no --restore-cmd was given: heal it "
                    "yourself")
        return super().undo(timeout)


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
