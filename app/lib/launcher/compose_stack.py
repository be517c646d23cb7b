"""The compose launcher: a topology's compose file brought up with docker-compose, waited on, torn down.

The local launcher (lib/launcher/local_stack.py) runs the same files as processes; this one runs them as a
user with Docker does. "Ready" is the compose file's own definition: every service with a
healthcheck reports healthy and every one-shot job (cluster-init) has exited 0, so the harness
waits for exactly what `docker compose up --wait` would (Compose 1.29, Debian's, has no --wait).
`down()` removes the containers, the network and the volumes, and nothing else.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from lib.errors import SetupError
from lib.topology.topology import TOPOLOGY_FILES, load_topology
from lib.util import REPO_ROOT
from lib.waits import wait_until

IMAGES_ENV_FILE = REPO_ROOT / "docker" / "images.env"  # written by docker/build-offline-images.sh
REGISTRY_IMAGES_ENV = "VHC_DOCKER_REGISTRY_IMAGES"  # =1: the compose files' registry images, images.env ignored


def compose_command() -> list[str]:
    """docker-compose (v1, Debian's) or `docker compose` (v2 plugin), whichever this machine has."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True,
                                                 timeout=20).returncode == 0:
        return ["docker", "compose"]
    raise SetupError("no docker-compose: apt-get install docker-compose (or install the compose plugin)")


def engine_answers(timeout: float = 20.0) -> bool:
    """The Docker engine answers `docker info` (the client alone is not enough)."""
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def image_settings(path: Path = IMAGES_ENV_FILE) -> dict[str, str]:
    """VALKEY_IMAGE=... lines of docker/images.env (empty when the registry images are used)."""
    if os.environ.get(REGISTRY_IMAGES_ENV) == "1" or not path.exists():
        return {}
    settings = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name and not name.startswith("#"):
            settings[name] = value
    return settings


@dataclass
class ComposeStack:
    """One topology's compose file, run with docker-compose from the repo root."""

    topology: str
    env: dict[str, str] = field(default_factory=dict)
    started: bool = False

    def __post_init__(self) -> None:
        if self.topology not in TOPOLOGY_FILES:
            raise SetupError(f"unknown topology {self.topology!r}: one of {', '.join(sorted(TOPOLOGY_FILES))}")
        self.file = REPO_ROOT / TOPOLOGY_FILES[self.topology]
        self.spec = load_topology(self.topology)
        self.containers = {name: self._container_name(name) for name in self.spec.services}

    def _container_name(self, service: str) -> str:
        raw = _compose_yaml(self.file)["services"][service]
        return raw.get("container_name", service)

    def _run(self, *args: str, timeout: float = 300.0, check: bool = True) -> subprocess.CompletedProcess:
        env = dict(os.environ, **image_settings(), **self.env)
        proc = subprocess.run([*compose_command(), "-f", str(self.file), *args], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise SetupError(f"{' '.join(compose_command())} -f {self.file.name} {' '.join(args)} failed: "
                             f"{compose_failure(proc.stderr or proc.stdout)}")
        return proc

    # ---- lifecycle --------------------------------------------------------------------------
    def up(self, timeout: float = 120.0) -> ComposeStack:
        """Refuse to adopt containers that already exist, start the stack, wait until it is ready."""
        existing = [name for name in self.containers.values() if _container_state(name) is not None]
        if existing:
            raise SetupError(f"containers {', '.join(existing)} already exist: stop them first "
                             f"(docker-compose -f {self.file.name} down), the harness does not adopt them")
        self.started = True
        try:
            self._run("up", "-d", "--build" if self.topology == "cluster" else "--no-build", timeout=timeout)
            self.wait_ready(timeout)
        except BaseException:
            self.down()
            raise
        return self

    def wait_ready(self, timeout: float) -> str:
        """Every healthcheck healthy, every job exited 0; a job that failed ends the wait at once."""
        if all(_container_state(name) is None for name in self.containers.values()):
            raise SetupError(f"no container of {self.file.name} exists: start the stack first with "
                             f"docker-compose -f {self.file.name} up -d")
        jobs = [n for n, s in self.spec.services.items() if s.kind == "job"]

        def ready() -> tuple[bool, str]:
            states = {name: _container_state(self.containers[name]) or {} for name in self.spec.services}
            seen, done = [], True
            for name, state in states.items():
                health = (state.get("Health") or {}).get("Status")
                if name in jobs:
                    ok = state.get("Status") == "exited" and state.get("ExitCode") == 0
                    seen.append(f"{name}: {state.get('Status')} (exit {state.get('ExitCode')})")
                else:
                    ok = health == "healthy" if health else state.get("Running", False)
                    seen.append(f"{name}: {health or state.get('Status')}")
                done = done and ok
            return done, ", ".join(seen)

        def job_failed() -> str | None:
            for name in jobs:
                state = _container_state(self.containers[name]) or {}
                if state.get("Status") == "exited" and state.get("ExitCode") not in (0, None):
                    return f"{name} exited with {state.get('ExitCode')}"
            return None

        return wait_until(ready, timeout=timeout, what=f"the {self.topology} compose stack to be ready",
                          abort=job_failed, explain=self.logs_tail)

    def down(self) -> None:
        """Remove the containers, network and volumes of this compose file (only those)."""
        if self.started:
            self._run("down", "-v", "--remove-orphans", "-t", "2", timeout=120, check=False)
            self.started = False

    def leftovers(self) -> list[str]:
        """Containers, networks or volumes of this compose project that still exist."""
        project = self.env.get("COMPOSE_PROJECT_NAME") or _compose_project()
        found = [name for name in self.containers.values() if _container_state(name) is not None]
        for kind in ("network", "volume"):
            proc = subprocess.run(["docker", kind, "ls", "-q", "--filter",
                                   f"label=com.docker.compose.project={project}"],
                                  capture_output=True, text=True, timeout=20)
            found += [f"{kind} {x}" for x in proc.stdout.split()]
        return found

    # ---- lookups ----------------------------------------------------------------------------
    def logs_tail(self, lines: int = 12) -> str:
        proc = self._run("logs", "--no-color", "--tail", str(lines), timeout=60, check=False)
        return f"--- last {lines} lines per service ---\n{proc.stdout.strip()}"

    def __enter__(self) -> ComposeStack:
        return self

    def __exit__(self, *exc) -> None:
        self.down()


def compose_failure(output: str) -> str:
    """The lines of a failed docker-compose run that say why, and the fix when we know it."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    why = [line for line in lines if "ERROR" in line or "Error" in line or "error" in line] or lines[-2:]
    text = " | ".join(why[-3:])[:400]
    if match := re.search(r"(?:0\.0\.0\.0|127\.0\.0\.1):(\d+).*(?:port is already allocated|address already in use)",
                          output, re.I | re.S):
        port = match.group(1)
        text += (f" — port {port} is busy: stop what listens there (ss -ltnp 'sport = :{port}'; a local stack: "
                 "python app/stack.py down)")
    return text


def _compose_project() -> str:
    """The project name compose derives from the directory (what labels carry), unless overridden."""
    return os.environ.get("COMPOSE_PROJECT_NAME") or "".join(
        ch for ch in REPO_ROOT.name.lower() if ch.isalnum() or ch in "-_")


def _container_state(name: str) -> dict | None:
    proc = subprocess.run(["docker", "inspect", "--format", "{{json .State}}", name],
                          capture_output=True, text=True, timeout=20)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout)


def _compose_yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())

