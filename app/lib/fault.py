"""Fault injectors: kill a node (local launcher or docker), or wait for a person to do it.

Every fault can say what it will do, inject it, and bring the node back where it can.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import RenderableType
from rich.live import Live

from lib.local_stack import STATE_FILE, LocalStack
from lib.report import SetupError, console
from lib.waits import wait_until
from lib.workload import History

STATE_ENV = "VHC_STACK_STATE"
FAULT_MODES = ("auto", "local", "docker", "manual", "graceful", "none")


class Fault:
    description = "no fault"
    can_restore = False
    by_hand = False  # a person causes it: the moment is when it is seen, not when inject() began

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
        self.stack.kill(self.service)

    def restore(self, timeout: float) -> bool:
        self.stack.start(self.service, timeout=timeout)
        return True


@dataclass
class DockerKill(Fault):
    container: str
    can_restore = True

    @property
    def description(self) -> str:
        return f"docker kill {self.container}"

    def inject(self) -> None:
        _docker("kill", self.container)

    def restore(self, timeout: float) -> bool:
        _docker("start", self.container)
        return True


@dataclass
class ManualKill(Fault):
    """Wait for someone else to kill the node, showing a live view and a countdown."""

    target: str
    hint: str
    is_down: Callable[[], bool]
    is_back: Callable[[], bool]
    view: Callable[[float], RenderableType]
    timeout: float = 300.0
    restart_hint: str = ""
    by_hand = True

    @property
    def description(self) -> str:
        return f"waiting for a person to kill {self.target} ({self.hint})"

    def inject(self) -> None:
        deadline = time.monotonic() + self.timeout
        console.print(f"[bold]Now kill the master {self.target}[/], e.g. {self.hint}  "
                      f"(waiting up to {self.timeout:.0f}s)")
        with Live(self.view(self.timeout), console=console, refresh_per_second=4, transient=True) as live:
            def down() -> tuple[bool, str]:
                live.update(self.view(max(0.0, deadline - time.monotonic())))
                return self.is_down(), "the master still answers"
            wait_until(down, timeout=self.timeout, what=f"someone to kill {self.target}")

    def restore(self, timeout: float) -> bool:
        console.print(f"now start {self.target} again{f' ({self.restart_hint})' if self.restart_hint else ''}; "
                      f"waiting up to {timeout:.0f}s")
        try:
            wait_until(lambda: (self.is_back(), "not answering yet"), timeout=timeout,
                       what=f"{self.target} to be started again")
        except SetupError:
            return False
        return True


def inject_recorded(fault: Fault, history: History, seen: str) -> float:
    """Inject the fault, record it in the history, and return when it happened.

    A fault done by hand happens when it is seen (the node stopped answering), not when the wait
    for it began: that moment is recorded as "fault seen" and returned instead.
    """
    fault_at = time.monotonic()
    history.event("fault", fault.description, at=fault_at)
    fault.inject()
    if fault.by_hand:
        fault_at = time.monotonic()
        history.event("fault seen", seen, at=fault_at)
    return fault_at


def docker_usable() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0


def _docker(*args: str) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise SetupError(f"docker {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def container_for(host: str, port: int) -> str | None:
    """The container behind an announced address: its service name, or the one publishing port."""
    if host and not re.fullmatch(r"[\d.]+|localhost|::1", host):
        return host
    out = _docker("ps", "--format", "{{.Names}} {{.Ports}}")
    for line in out.splitlines():
        name, _, ports = line.partition(" ")
        if re.search(rf":{port}->", ports):
            return name
    return None


def local_stack_for(topology: str, port: int) -> tuple[LocalStack, str] | None:
    """The recorded local stack (env VHC_STACK_STATE, else .stack/TOPOLOGY) with a service on port."""
    candidates = [Path(p) for p in (os.environ.get(STATE_ENV),) if p]
    candidates.append(LocalStack.default_state_dir(topology))
    for state_dir in candidates:
        if (state_dir / STATE_FILE).exists():
            stack = LocalStack.load(state_dir)
            if stack.topology.name == topology and (service := stack.service_at(port)):
                return stack, service
    return None


def choose_kill(mode: str, topology: str, announced: tuple[str, int], reachable: tuple[str, int]) -> Fault:
    """The kill fault for a node: local launcher, docker, or a SetupError that says what to use."""
    if mode in ("auto", "local"):
        found = local_stack_for(topology, reachable[1])
        if found:
            return LocalKill(*found)
        if mode == "local":
            raise SetupError(f"--fault local: no local {topology} stack records a node on port {reachable[1]} "
                             f"(start one with python app/stack.py up {topology})")
    if mode in ("auto", "docker"):
        if docker_usable():
            container = container_for(*announced)
            if container:
                return DockerKill(container)
            if mode == "docker":
                raise SetupError(f"--fault docker: no container found for {announced[0]}:{announced[1]}")
        elif mode == "docker":
            raise SetupError("--fault docker: docker is not usable here (no docker command or no engine); "
                             "use --fault manual, graceful or none")
    raise SetupError(f"--fault auto: the node {reachable[0]}:{reachable[1]} belongs to no local stack and docker "
                     "is not usable; choose --fault manual (you kill it), graceful or none")
