"""How a fault reaches one server's process: a local stack's service or a compose container, one interface.

The faults (kill, pause, SIGTERM, ...) say what happens to a node; a NodeControl says how, on the platform
the node runs on: signals to a pid the launcher recorded, or `docker kill|stop|pause|unpause|start`.
node_control() picks it, or raises a SetupError naming what would work instead.
"""

from __future__ import annotations

import ipaddress
import signal
import subprocess
from dataclasses import dataclass
from typing import Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from lib.errors import SetupError
from lib.launcher import process
from lib.launcher.compose_stack import engine_answers
from lib.launcher.discovery import stack_serving
from lib.launcher.local_stack import LocalStack
from lib.launcher.ownership import is_local_stack_host, ownership
from lib.topology.topology import TOPOLOGY_FILES
from lib.waits import WaitTimeout, wait_until


class NodeControl(Protocol):
    name: str  # the service or container name, for descriptions and hints

    def kill(self) -> None: ...  # SIGKILL (docker kill)

    def terminate(self) -> None: ...  # SIGTERM (docker stop): the server's own shutdown path runs

    def pause(self) -> None: ...  # SIGSTOP (docker pause): alive, silent, sockets kept open

    def resume(self) -> None: ...  # SIGCONT (docker unpause)

    def start(self, timeout: float) -> bool: ...  # start again; True once it answers PING

    def running(self) -> bool: ...


@dataclass
class LocalNode:
    """A service of a local stack: signals to the pid the launcher recorded."""

    stack: LocalStack
    name: str

    def _pid(self) -> int:
        pid = self.stack.service(self.name).pid
        if not process.is_alive(pid):
            raise SetupError(f"{self.name} is not running (start it: python app/stack.py start {self.name})")
        return pid

    def kill(self) -> None:
        self.stack.kill(self.name)

    def terminate(self) -> None:
        """SIGTERM, then wait for the process to exit: a shutdown that waits for replicas takes a moment."""
        pid = self._pid()
        process.signal_process(pid, signal.SIGTERM)
        if not process.wait_dead(pid, timeout=30):
            raise WaitTimeout(f"{self.name} (pid {pid}) still runs 30 s after SIGTERM", observed="alive")

    def pause(self) -> None:
        process.signal_process(self._pid(), signal.SIGSTOP)

    def resume(self) -> None:
        pid = self.stack.service(self.name).pid
        if process.is_alive(pid):
            process.signal_process(pid, signal.SIGCONT)

    def start(self, timeout: float) -> bool:
        if self.name in self.stack.running():
            return True  # already back (restored twice: by the run, then by an interrupt)
        self.stack.start(self.name, timeout=timeout)
        return True

    def running(self) -> bool:
        return self.name in self.stack.running()


@dataclass
class DockerNode:
    """A container of this repo's compose files."""

    name: str  # the container
    address: tuple[str, int] | None = None  # where its server answers from here (None: do not wait)

    def kill(self) -> None:
        docker("kill", self.name)

    def terminate(self) -> None:
        docker("stop", self.name)  # SIGTERM, then SIGKILL after docker's 10 s grace

    def pause(self) -> None:
        docker("pause", self.name)

    def resume(self) -> None:
        if docker("inspect", "-f", "{{.State.Paused}}", self.name).strip() == "true":
            docker("unpause", self.name)

    def start(self, timeout: float) -> bool:
        """docker start, then wait for PING: `docker start` returns long before the server accepts connections."""
        docker("start", self.name)
        if self.address is None:
            return True
        address = self.address
        try:
            wait_until(lambda: (server_answers(address), "no answer to PING yet"), timeout=timeout,
                       what=f"{self.name} to answer PING at {address[0]}:{address[1]} after docker start")
        except WaitTimeout:
            return False
        return True

    def running(self) -> bool:
        return docker("inspect", "-f", "{{.State.Running}}", self.name).strip() == "true"


def node_control(mode: str, topology: str, announced: tuple[str, int], reachable: tuple[str, int], *,
                 fault: str | None = None) -> NodeControl:
    """The local stack's service or the compose container serving a node; mode: auto | local | docker.

    fault names the --fault value in the one-line SetupError when neither applies (default: mode).
    """
    flag = f"--fault {fault or mode}"
    if mode in ("auto", "local"):
        found = stack_serving(topology, reachable)
        if found:
            return LocalNode(*found)
        if mode == "local":
            raise SetupError(f"{flag}: no local {topology} stack records a node at {reachable[0]}:{reachable[1]} "
                             f"(start one with python app/stack.py up {topology})")
    usable = docker_usable()
    if usable and (container := container_for(*announced)):
        return DockerNode(container, reachable)
    if mode == "docker":
        raise SetupError(f"{flag}: no container of this repo's compose files serves {announced[0]}:{announced[1]}; "
                         f"start the stack with docker-compose -f {TOPOLOGY_FILES[topology]} up -d, or use --fault "
                         "manual or graceful" if usable else f"{flag}: docker is not usable here (no docker command "
                         "or no engine); use --fault manual, graceful or none")
    docker = ("is no container of this repo's compose files" if usable
              else "docker is not usable here (no docker command or no engine)")
    where = (f"{flag} cannot reach the process of {announced[0]}:{announced[1]}: it" if fault
             else f"{flag}: the node {reachable[0]}:{reachable[1]}")
    raise SetupError(f"{where} belongs to no local stack and {docker}: choose "
                     "--fault manual (you kill it), --fault exec --kill-cmd CMD --restore-cmd CMD (your platform's "
                     "own commands), --fault graceful --allow-destructive, or --fault none")


# ---- docker and PING, as every fault uses them ------------------------------------------------

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


def docker(*args: str) -> str:
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
        names = docker("ps", "--filter", f"publish={port}", "--format", "{{.Names}}").split()
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
