"""Fault injectors: kill a node (local launcher or docker), or wait for a person to do it.

Every fault can say what it will do, inject it, and bring the node back where it can. Faults never
print: a fault done by hand reports what it asks of the person through a callback, and the entry
point shows it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from rich.console import RenderableType

from lib import events
from lib.errors import SetupError
from lib.faults.nodes import DockerNode, LocalNode, container_for, docker_usable, node_control, server_answers  # noqa: F401
from lib.history import History
from lib.launcher.local_stack import LocalStack
from lib.waits import WaitTimeout, wait_until

# Where a kill runs (auto | local | docker), done by hand (manual), or what else breaks (docs/faults.md).
KILL_MODES = ("auto", "local", "docker")
FAULT_MODES = (*KILL_MODES, "manual", "graceful", "coordinated", "pause", "partition", "sigterm", "exec",
               "replica-kill", "quorum-loss", "shard-loss", "none")
HA_ONLY, CLUSTER_ONLY = ("quorum-loss",), ("shard-loss",)


class Fault:
    description = "no fault"
    can_restore = False
    by_hand = False  # a person causes it: the moment is when it is seen, not when inject() began
    # Set by inject_recorded before inject() runs (a kill interrupted half-way may still have
    # happened), cleared by restore_fault: an interrupted run knows whether it must bring a node back.
    pending_restore = False
    # True: the run itself heals the fault once the failover is seen (a pause is resumed, a cut healed),
    # and measures what the old master does afterwards. False: the suite restores it before the rejoin check.
    heals_in_run = False

    def inject(self) -> None:
        """Cause the fault now."""

    def restore(self, timeout: float) -> bool:
        """Bring the node back; False if it did not come back in time."""
        return False


@dataclass
class LocalKill(Fault):
    stack: LocalStack
    service: str
    can_restore = True

    @property
    def description(self) -> str:
        return f"SIGKILL {self.service} (local launcher, like docker kill)"

    def inject(self) -> None:
        LocalNode(self.stack, self.service).kill()

    def restore(self, timeout: float) -> bool:
        return LocalNode(self.stack, self.service).start(timeout)


@dataclass
class DockerKill(Fault):
    """docker kill / docker start of one of this repo's compose containers."""

    container: str
    address: tuple[str, int] | None = None  # where its server answers from here (None: do not wait)
    can_restore = True

    @property
    def description(self) -> str:
        return f"docker kill {self.container}"

    def inject(self) -> None:
        DockerNode(self.container, self.address).kill()

    def restore(self, timeout: float) -> bool:
        """docker start, then wait until the server answers PING (DockerNode.start)."""
        return DockerNode(self.container, self.address).start(timeout)


@dataclass(frozen=True)
class WaitNotice:
    """What a fault done by hand asks of the person right now, for the entry point to show."""

    phase: str  # "kill": waiting for the kill; "killed": seen; "restart": waiting for the restart
    message: str  # rich markup
    remaining_s: float
    view: RenderableType | None = None  # the live view while waiting for the kill


@dataclass
class ManualKill(Fault):
    """Wait for someone else to kill the node; what to do and a live view go to notify()."""

    target: str
    hint: str
    is_down: Callable[[], bool]
    is_back: Callable[[], bool]
    view: Callable[[float], RenderableType]
    timeout: float = 300.0
    restart_hint: str = ""
    notify: Callable[[WaitNotice], None] | None = None  # None: nobody is shown anything
    role: str = "the master"  # how the instruction names the node: "Now kill the master valkey-master:6379"
    by_hand = True

    @property
    def description(self) -> str:
        return f"waiting for a person to kill {self.target} ({self.hint})"

    def inject(self) -> None:
        deadline = time.monotonic() + self.timeout
        message = (f"[bold]Now kill {f'{self.role} ' if self.role else ''}{self.target}[/], e.g. {self.hint}  "
                   f"(waiting up to {self.timeout:.0f}s)")

        def down() -> tuple[bool, str]:
            self._notify(WaitNotice("kill", message, max(0.0, deadline - time.monotonic()),
                                    self.view(max(0.0, deadline - time.monotonic()))))
            return self.is_down(), "the master still answers"

        try:
            wait_until(down, timeout=self.timeout, what=f"someone to kill {self.target}")
        finally:
            self._notify(WaitNotice("killed", message, max(0.0, deadline - time.monotonic())))

    def restore(self, timeout: float) -> bool:
        self._notify(WaitNotice("restart", f"now start {self.target} again"
                                f"{f' ({self.restart_hint})' if self.restart_hint else ''}; "
                                f"waiting up to {timeout:.0f}s", timeout))
        try:
            wait_until(lambda: (self.is_back(), "not answering yet"), timeout=timeout,
                       what=f"{self.target} to be started again")
        except WaitTimeout:
            return False
        return True

    def _notify(self, notice: WaitNotice) -> None:
        if self.notify is not None:
            self.notify(notice)


def inject_recorded(fault: Fault, history: History, seen: str) -> float:
    """Inject the fault, record it in the history, and return when it happened.

    A fault done by hand happens when it is seen (the node stopped answering), not when the wait
    for it began: that moment is recorded as "fault seen" and returned instead.
    """
    fault_at = time.monotonic()
    history.event(events.FAULT, fault.description, at=fault_at)
    fault.pending_restore = fault.can_restore or fault.by_hand
    fault.inject()
    if fault.by_hand:
        fault_at = time.monotonic()
        history.event(events.FAULT_SEEN, seen, at=fault_at)
    return fault_at


def restore_fault(fault: Fault, timeout: float) -> bool:
    """Bring the node back if the fault can (or wait for the person to); clears pending_restore."""
    restored = fault.restore(timeout)
    if restored:
        fault.pending_restore = False
    return restored


def undo_interrupted_fault(fault: Fault | None, timeout: float = 60.0) -> str | None:
    """After Ctrl-C / SIGTERM: bring back a node the run's fault took down; one line saying what happened.

    A fault must not outlive the run that caused it. A node killed by hand is the person's to start.
    """
    if fault is None or not fault.pending_restore:
        return None
    if fault.by_hand:
        return (f"the node was killed by hand: start it again yourself "
                f"({getattr(fault, 'restart_hint', '') or 'as you stopped it'})")
    try:
        back = restore_fault(fault, timeout)
    except (SetupError, WaitTimeout, redis.RedisError, OSError) as exc:
        return f"could not undo {fault.description}: {type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
    return (f"undone: {fault.description} ({'healed' if fault.heals_in_run else 'started again'})" if back else
            f"could not undo {fault.description}: not back within {timeout:.0f}s")


def choose_kill(mode: str, topology: str, announced: tuple[str, int], reachable: tuple[str, int]) -> Fault:
    """The kill fault for a node: local launcher, docker, or a SetupError that says what to use."""
    node = node_control(mode, topology, announced, reachable)
    return LocalKill(node.stack, node.name) if isinstance(node, LocalNode) else DockerKill(node.name, reachable)
