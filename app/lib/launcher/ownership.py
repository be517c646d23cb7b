"""Which servers the harness may change: the rule behind --allow-destructive.

A server is the harness's own when
  - a running local stack recorded by the launcher serves its port on a loopback address, or
  - it is a container started from one of this repo's compose files (compose labels name the file).

Faults (kill, failover), slot migrations, CONFIG SET and eviction run on the harness's own servers
only. Anywhere else they need --allow-destructive, and even then the harness puts back the roles,
slots and config it changed. Suites check this before they touch any server, so a refusal costs
nothing: no key written, no fault injected.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lib.errors import SetupError
from lib.launcher.local_stack import running_stacks
from lib.topology.topology import TOPOLOGY_FILES
from lib.util import REPO_ROOT

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def is_local_stack_host(host: str) -> bool:
    """host is where local stacks listen (127.0.0.1, however it is spelt: 127.1 too), or localhost / ::1.

    Not the rest of 127.0.0.0/8: a server on 127.0.0.2 is another server, whatever its port.
    """
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return socket.inet_aton(host) == socket.inet_aton("127.0.0.1")
    except OSError:
        return False
COMPOSE_FILES_LABEL = "com.docker.compose.project.config_files"
COMPOSE_WORKDIR_LABEL = "com.docker.compose.project.working_dir"


@dataclass(frozen=True)
class Ownership:
    """Whether the harness started the server at an address, and how it knows."""

    owned: bool
    how: str  # "local stack .stack/ha (valkey-master)", "container valkey-master of docker-compose.ha.yml", ...


def ownership(host: str, port: int, stacks_root: Path | None = None) -> Ownership:
    """Look for the server at host:port among the launcher's stacks, then among our compose containers."""
    if is_local_stack_host(host):
        for stack in _stacks(stacks_root):
            service = stack.service_at(port)
            if service is not None and service in stack.running():
                return Ownership(True, f"local stack {stack.state_dir} ({service})")
    container = _our_container(host, port)
    if container is not None:
        return Ownership(True, container)
    return Ownership(False, f"{host}:{port} is not served by a local stack or a container of this repo's compose files")


def require_owned(addresses: list[tuple[str, int]], *, allowed: bool, action: str) -> list[Ownership]:
    """Refuse (SetupError, exit 2) to do `action` on servers the harness did not start, unless allowed."""
    found = [ownership(host, port) for host, port in addresses]
    if not allowed:
        foreign = [o.how for o in found if not o.owned]
        if foreign:
            raise SetupError(f"refusing to {action}: {foreign[0]}; pass --allow-destructive to do it anyway "
                             "(the harness puts back the roles, slots and config it changes), or run it against "
                             "a stack it started (python app/stack.py up ..., or this repo's compose files; a "
                             "stack started with --state-dir DIR is found with VHC_STACK_STATE=DIR)")
    return found


def _stacks(root: Path | None) -> list:
    from lib.launcher.discovery import chosen_state_dir  # discovery imports this module
    from lib.launcher.local_stack import STATE_FILE, LocalStack

    stacks = []
    chosen = chosen_state_dir()
    if chosen and (chosen / STATE_FILE).exists():
        stacks.append(LocalStack.load(chosen))
    stacks += running_stacks(root)
    return stacks


def _our_container(host: str, port: int) -> str | None:
    """The compose container of this repo that is host (by name) or publishes port on loopback."""
    if not shutil.which("docker"):
        return None
    if is_local_stack_host(host):
        query = ["docker", "ps", "--filter", f"publish={port}", "--format", "{{.Names}}"]
    elif re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", host) and not re.fullmatch(r"[\d.]+", host):
        query = ["docker", "ps", "--filter", f"name=^{host}$", "--format", "{{.Names}}"]
    else:
        return None  # an IP that is not loopback: no local container is it
    try:
        names = subprocess.run(query, capture_output=True, text=True, timeout=10).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return None
    for name in names:
        labels = _labels(name)
        files = labels.get(COMPOSE_FILES_LABEL, "")
        workdir = labels.get(COMPOSE_WORKDIR_LABEL, "")
        ours = {str(REPO_ROOT / f) for f in TOPOLOGY_FILES.values()}
        if any(f.strip() in ours for f in files.split(",")) or (
                workdir and Path(workdir).resolve() == REPO_ROOT and any(Path(f).name in TOPOLOGY_FILES.values()
                                                                         for f in files.split(","))):
            return f"container {name} of {', '.join(Path(f).name for f in files.split(','))}"
    return None


def _labels(container: str) -> dict[str, str]:
    try:
        out = subprocess.run(["docker", "inspect", "--format", "{{json .Config.Labels}}", container],
                             capture_output=True, text=True, timeout=10).stdout
        return json.loads(out or "{}") or {}
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return {}
