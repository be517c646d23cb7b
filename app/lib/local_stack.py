"""The local launcher: runs a compose topology as plain processes on this machine.

State (pids, ports, data dirs) is kept in <state_dir>/state.json, so `stack.py status`, `kill`,
`start` and `down` work from any later command, and test scripts find the endpoints.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lib import process
from lib.report import SetupError
from lib.topology import LocalPlan, Topology, load_topology, local_plan, server_binaries
from lib.util import REPO_ROOT, port_is_free, tail

DEFAULT_STATE_ROOT = REPO_ROOT / ".stack"
STATE_ROOT_ENV = "VHC_STACK_ROOT"  # moves .stack/ elsewhere: the README tests run beside a user's own stacks
STATE_FILE = "state.json"


def state_root() -> Path:
    """Where stacks started without --state-dir live: $VHC_STACK_ROOT, else .stack/ in the repo."""
    return Path(os.environ.get(STATE_ROOT_ENV) or DEFAULT_STATE_ROOT)


@dataclass
class ServiceState:
    name: str
    kind: str
    port: int | None
    argv: list[str]
    data_dir: str
    log: str
    pid: int | None = None
    writable_copy: list[str] | None = None


class LocalStack:
    """One running (or runnable) local copy of a topology."""

    def __init__(self, topology: Topology, state_dir: Path, port_map: dict[int, int] | None = None,
                 *, tie_to_parent: bool = True):
        self.topology = topology
        self.state_dir = Path(state_dir)
        self.port_map = dict(port_map or {})
        self.tie_to_parent = tie_to_parent
        self.services: dict[str, ServiceState] = {}

    # ---- construction and state -------------------------------------------------------------
    @classmethod
    def load(cls, state_dir: Path) -> LocalStack:
        """The stack recorded in state_dir (started by this or another process)."""
        path = Path(state_dir) / STATE_FILE
        if not path.exists():
            raise SetupError(f"no local stack recorded in {state_dir}: start one with python app/stack.py up")
        saved = json.loads(path.read_text())
        stack = cls(load_topology(saved["topology"], Path(saved["compose_file"])), Path(state_dir),
                    {int(k): v for k, v in saved["port_map"].items()}, tie_to_parent=False)
        stack.services = {name: ServiceState(**svc) for name, svc in saved["services"].items()}
        return stack

    @staticmethod
    def default_state_dir(topology: str) -> Path:
        return state_root() / topology

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        body = {"topology": self.topology.name, "compose_file": str(self.topology.compose_file),
                "port_map": self.port_map, "saved_at": time.time(),
                "services": {name: asdict(svc) for name, svc in self.services.items()}}
        tmp = self.state_dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(body, indent=2))
        tmp.replace(self.state_dir / STATE_FILE)

    def running(self) -> list[str]:
        return [name for name, svc in self.services.items() if process.is_alive(svc.pid)]

    # ---- lifecycle --------------------------------------------------------------------------
    def up(self, timeout: float = 60.0) -> LocalStack:
        """Start every service in dependency order and wait until the topology is ready.

        Any failure (or Ctrl-C) while coming up stops what was started, then re-raises.
        """
        from lib.readiness import wait_ready

        if (self.state_dir / STATE_FILE).exists():
            previous = LocalStack.load(self.state_dir)
            if alive := previous.running():
                raise SetupError(f"the {self.topology.name} stack in {self.state_dir} is already running "
                                 f"({', '.join(alive)}): python app/stack.py down {self.topology.name}")
        self._refuse_busy_ports()
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)
        binaries = server_binaries()
        try:
            for service in self.topology.start_order():
                plan = local_plan(self.topology, service, stack_dir=self.state_dir,
                                  port_map=self.port_map, binaries=binaries)
                self.services[service.name] = self._state_for(plan, service.kind)
                if service.kind == "job":
                    continue  # jobs (cluster init) run once every server is ready
                self._spawn(service.name)
            self.save()  # jobs too (cluster-init): status lists them and `run` can re-run them by their argv
            wait_ready(self, timeout)
        except BaseException:
            self.down()
            raise
        return self

    def _state_for(self, plan: LocalPlan, kind: str) -> ServiceState:
        copy = [str(p) for p in plan.writable_copy] if plan.writable_copy else None
        return ServiceState(plan.service, kind, plan.port, list(plan.argv), str(plan.data_dir),
                            str(self.state_dir / "logs" / f"{plan.service}.log"), writable_copy=copy)

    def _spawn(self, name: str) -> int:
        svc = self.services[name]
        Path(svc.data_dir).mkdir(parents=True, exist_ok=True)
        if svc.writable_copy:  # what sentinel/writable-config.sh does in the container
            template, copy = map(Path, svc.writable_copy)
            if not copy.exists():
                shutil.copyfile(template, copy)
        svc.pid = process.spawn(svc.argv, log=Path(svc.log), cwd=Path(svc.data_dir),
                                tie_to_parent=self.tie_to_parent)
        self.save()
        return svc.pid

    def _refuse_busy_ports(self) -> None:
        for service in self.topology.services.values():
            if service.port is None:
                continue
            port = self.port_map.get(service.port, service.port)
            if not port_is_free(port):
                raise SetupError(
                    f"port {port} for {service.name} is busy: stop what listens there "
                    f"(ss -ltnp 'sport = :{port}'), or python app/stack.py down if it is an old stack")

    def down(self) -> None:
        """Stop every process of the stack (SIGTERM, grace, SIGKILL) and forget it.

        Another process may have restarted a service meanwhile (python app/stack.py start, or a
        test script's fault restore), so the pids recorded on disk are stopped too; a pid is only
        signalled while it still runs the service's own binary (pids get reused).
        """
        on_disk = {}
        if (self.state_dir / STATE_FILE).exists():
            with contextlib.suppress(SetupError, ValueError, KeyError):
                on_disk = LocalStack.load(self.state_dir).services
        for name, svc in reversed(list(self.services.items())):
            pids = {svc.pid, on_disk[name].pid if name in on_disk else None} - {None, 0}
            for pid in pids:
                if _runs(pid, svc.argv):
                    process.stop(pid)
        state = self.state_dir / STATE_FILE
        if state.exists():
            state.unlink()

    def kill(self, name: str) -> int:
        """SIGKILL one service, like `docker kill`; returns the pid that was killed."""
        svc = self.service(name)
        if not process.is_alive(svc.pid):
            raise SetupError(f"{name} is not running")
        pid = svc.pid
        process.kill(pid)
        return pid

    def start(self, name: str, timeout: float = 30.0) -> int:
        """Start one stopped service again, with its data dir and its config (like `docker start`)."""
        from lib.readiness import wait_pingable

        svc = self.service(name)
        if process.is_alive(svc.pid):
            raise SetupError(f"{name} is already running (pid {svc.pid})")
        pid = self._spawn(name)
        wait_pingable(self, name, timeout)
        return pid

    # ---- lookups ----------------------------------------------------------------------------
    def service(self, name: str) -> ServiceState:
        if name not in self.services:
            raise SetupError(f"no service {name!r} in the {self.topology.name} stack; "
                             f"it has {', '.join(self.services)}")
        return self.services[name]

    def endpoint(self, name: str) -> tuple[str, int]:
        port = self.service(name).port
        if port is None:
            raise SetupError(f"{name} listens on no port")
        return "127.0.0.1", port

    def service_at(self, port: int) -> str | None:
        return next((n for n, s in self.services.items() if s.port == port), None)

    def endpoints(self, kind: str) -> list[tuple[str, int]]:
        return [self.endpoint(n) for n, s in self.services.items() if s.kind == kind]

    def log_tail(self, name: str, lines: int = 15) -> str:
        return f"--- last lines of {self.service(name).log} ---\n{tail(self.service(name).log, lines)}"

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc) -> None:
        self.down()


def running_stacks(root: Path | None = None) -> list[LocalStack]:
    """Every stack recorded under root (default: state_root()), running or half-dead, for status and down."""
    root = state_root() if root is None else root
    if not root.exists():
        return []
    return [LocalStack.load(p.parent) for p in sorted(root.glob(f"*/{STATE_FILE}"))]


def _runs(pid: int, argv: list[str]) -> bool:
    """pid is alive and runs argv[0] (servers rewrite their title, so compare the start only)."""
    return process.is_alive(pid) and " ".join(process.cmdline(pid)).startswith(argv[0])
