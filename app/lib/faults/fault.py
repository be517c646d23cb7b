"""Fault injectors: kill a node (local launcher or docker), or wait for a person to do it.

Every fault can say what it will do, inject it, and bring the node back where it can. Faults never
print: a fault done by hand reports what it asks of the person through a callback, and the entry
point shows it.
"""

from __future__ import annotations

import ipaddress
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from rich.console import RenderableType

from lib import events
from lib.errors import SetupError
from lib.history import History
from lib.launcher.compose_stack import engine_answers
from lib.launcher.discovery import stack_serving
from lib.launcher.local_stack import LocalStack
from lib.launcher.ownership import is_local_stack_host, ownership
from lib.topology.topology import TOPOLOGY_FILES
from lib.waits import WaitTimeout, wait_until

FAULT_MODES = ("auto", "local", "docker", "manual", "graceful", "none")


class Fault:
    description = "no fault"
    can_restore = False
    by_hand = False  # a person causes it: the moment is when it is seen, not when inject() began
    # Set by inject_recorded before inject() runs (a kill interrupted half-way may still have
    # happened), cleared by restore_fault: an interrupted run knows whether it must bring a node back.
    pending_restore = False

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
        if self.service in self.stack.running():
            return True  # already back (restored twice: by the run, then by an interrupt)
        self.stack.start(self.service, timeout=timeout)
        return True


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
        _docker("kill", self.container)

    def restore(self, timeout: float) -> bool:
        """docker start, then wait until the server answers PING: `docker start` returns as soon as the
        process runs, long before it accepts connections (and loads its data), so callers that go on
        to check replication would otherwise see a dead node."""
        _docker("start", self.container)
        if self.address is None:
            return True
        address = self.address
        try:
            wait_until(lambda: (server_answers(address), "no answer to PING yet"), timeout=timeout,
                       what=f"{self.container} to answer PING at {address[0]}:{address[1]} after docker start")
        except WaitTimeout:
            return False
        return True


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
    return (f"undone: {fault.description} (started again)" if back else
            f"could not undo {fault.description}: not back within {timeout:.0f}s")


def server_answers(address: tuple[str, int], timeout: float = 1.0) -> bool:
    """One PING, no retries; an auth error counts as an answer (the server is up, it wants a password)."""
    client = redis.Redis(host=address[0], port=address[1], socket_timeout=timeout, socket_connect_timeout=timeout,
                         retry=Retry(NoBackoff(), 0))
    try:
        client.ping()
        return True
    except redis.AuthenticationError:
        return True
    except redis.ResponseError as exc:
        return str(exc).startswith("NOAUTH")
    except redis.RedisError:
        return False
    finally:
        client.close()


def docker_usable() -> bool:
    """A Docker engine answers (the client alone is not enough)."""
    return engine_answers()


def _docker(*args: str) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise SetupError(f"docker {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def container_for(host: str, port: int) -> str | None:
    """The container of this repo's compose files behind an announced address, or None.

    Only our own containers (lib.launcher.ownership: compose labels name one of our files), because the
    caller is about to `docker kill` it: a host given by name must be that container; a loopback
    address means the container publishing port; any other IP is never a local container (a
    container publishing the same port on this machine is someone else's server).
    """
    if is_local_stack_host(host):
        names = _docker("ps", "--filter", f"publish={port}", "--format", "{{.Names}}").split()
    elif _is_ip(host):
        return None
    else:
        names = [host]
    return next((name for name in names if ownership(name, port).owned), None)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def choose_kill(mode: str, topology: str, announced: tuple[str, int], reachable: tuple[str, int]) -> Fault:
    """The kill fault for a node: local launcher, docker, or a SetupError that says what to use."""
    if mode in ("auto", "local"):
        found = stack_serving(topology, reachable)
        if found:
            return LocalKill(*found)
        if mode == "local":
            raise SetupError(f"--fault local: no local {topology} stack records a node at "
                             f"{reachable[0]}:{reachable[1]} (start one with python app/stack.py up {topology})")
    if mode in ("auto", "docker"):
        if docker_usable():
            container = container_for(*announced)
            if container:
                return DockerKill(container, reachable)
            if mode == "docker":
                raise SetupError(f"--fault docker: no container of this repo's compose files serves "
                                 f"{announced[0]}:{announced[1]}; start the stack with docker-compose -f "
                                 f"{TOPOLOGY_FILES[topology]} up -d, or use --fault manual or graceful")
        elif mode == "docker":
            raise SetupError("--fault docker: docker is not usable here (no docker command or no engine); "
                             "use --fault manual, graceful or none")
    docker = ("is no container of this repo's compose files" if docker_usable()
              else "docker is not usable here (no docker command or no engine)")
    raise SetupError(f"--fault auto: the node {reachable[0]}:{reachable[1]} belongs to no local stack and {docker}: "
                     "choose --fault manual (you kill it), or --fault graceful --allow-destructive, or --fault none")
