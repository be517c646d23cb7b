"""The local launcher: runs a compose topology as plain processes on this machine.

State (pids, ports, data dirs) is kept in <state_dir>/state.json, so `stack.py status`, `kill`,
`start` and `down` work from any later command, and test scripts find the endpoints. The state dir
may be one a user named (--state-dir): a marker file records what the launcher made there, and only
that is ever deleted. A stack may run other server versions than the default (servers= from --server,
lib/launcher/servers.py); each service records the catalog name it runs, so later commands can say so.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from lib.errors import SetupError
from lib.launcher import process
from lib.launcher.servers import ALL_SERVICES, server_binary
from lib.topology.topology import LocalPlan, Topology, load_topology, local_plan, server_binaries
from lib.util import REPO_ROOT, port_is_free, tail

DEFAULT_STATE_ROOT = REPO_ROOT / ".stack"
STATE_ROOT_ENV = "VHC_STACK_ROOT"  # moves .stack/ elsewhere: the README tests run beside a user's own stacks
STATE_FILE = "state.json"
MARKER_FILE = ".vhc-stack"  # "this directory is a stack state dir", and which entries the launcher made in it
LAUNCHER_ENTRIES = ("logs", "rendered", STATE_FILE, STATE_FILE + ".tmp")  # besides one data dir per service


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
    server: str | None = None  # the catalog name it runs (--server); None: the default binary


class LocalStack:
    """One running (or runnable) local copy of a topology."""

    def __init__(self, topology: Topology, state_dir: Path, port_map: dict[int, int] | None = None,
                 *, tie_to_parent: bool = True, servers: dict[str, str] | None = None):
        self.topology = topology
        self.servers = dict(servers or {})  # service (or ALL_SERVICES) -> catalog name, from --server
        self.state_dir = Path(state_dir).absolute()  # servers run in their data dirs: relative paths would break
        self.port_map = dict(port_map or {})
        self.tie_to_parent = tie_to_parent
        self.services: dict[str, ServiceState] = {}
        self._owns_state = False  # down() touches the state dir only for a stack this object started or loaded

    # ---- construction and state -------------------------------------------------------------
    @classmethod
    def load(cls, state_dir: Path) -> LocalStack:
        """The stack recorded in state_dir (started by this or another process)."""
        path = Path(state_dir) / STATE_FILE
        if not path.exists():
            raise SetupError(f"no local stack recorded in {state_dir}: start one with python app/stack.py up")
        try:
            saved = json.loads(path.read_text())
            topology = load_topology(saved["topology"], Path(saved["compose_file"]))
            port_map = {int(k): v for k, v in saved["port_map"].items()}
            services = {name: ServiceState(**svc) for name, svc in saved["services"].items()}
        except json.JSONDecodeError as exc:
            raise SetupError(_unreadable(path, f"is not valid JSON ({exc})")) from None
        except KeyError as exc:
            raise SetupError(_unreadable(path, f"has no {exc} entry")) from None
        except (OSError, TypeError, ValueError, AttributeError) as exc:
            raise SetupError(_unreadable(path, f"is not a stack record ({type(exc).__name__}: {exc})")) from None
        servers = {name: svc.server for name, svc in services.items() if svc.server}
        stack = cls(topology, Path(state_dir), port_map, tie_to_parent=False, servers=servers)
        stack.services = services
        stack._owns_state = True
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
        from lib.launcher.readiness import wait_ready

        self._refuse_running()
        check_state_dir(self.state_dir)
        self._refuse_busy_ports()
        binaries = server_binaries()
        chosen = self._chosen_binaries()  # before anything is written: a failed download leaves no trace
        claim_state_dir(self.state_dir, [*self.topology.services, *LAUNCHER_ENTRIES])
        self._owns_state = True
        try:
            for service in self.topology.start_order():
                server, binary = chosen.get(service.name, (None, None))
                program = {service.command[0]: str(binary)} if binary else {}
                plan = local_plan(self.topology, service, stack_dir=self.state_dir,
                                  port_map=self.port_map, binaries={**binaries, **program})
                self.services[service.name] = self._state_for(plan, service.kind)
                self.services[service.name].server = server
                if service.kind == "job":
                    continue  # jobs (cluster init) run once every server is ready
                self._spawn(service.name)
            self.save()  # jobs too (cluster-init): status lists them and `run` can re-run them by their argv
            wait_ready(self, timeout)
        except BaseException:
            self.down()
            raise
        return self

    def _chosen_binaries(self) -> dict[str, tuple[str, Path]]:
        """service -> (catalog name, binary) for the services --server names; fetched now if need be.

        SERVICE=NAME names one server or sentinel; NAME alone every service the compose file runs with
        valkey-server (on compat: the valkey side, redis stays redis-server).
        """
        runnable = {s.name: s for s in self.topology.services.values() if s.kind in ("server", "sentinel")}
        picked: dict[str, str] = {}
        if everywhere := self.servers.get(ALL_SERVICES):
            picked = {name: everywhere for name, s in runnable.items() if s.command[0] == "valkey-server"}
        for service, server in self.servers.items():
            if service == ALL_SERVICES:
                continue
            if service not in runnable:
                raise SetupError(f"--server {service}={server}: the {self.topology.name} topology has no server "
                                 f"{service!r}; its servers are {', '.join(runnable)}")
            picked[service] = server
        binaries = {server: server_binary(server) for server in set(picked.values())}
        return {service: (server, binaries[server]) for service, server in picked.items()}

    def _refuse_running(self) -> None:
        """A stack recorded here that still runs is someone's: refuse before touching anything."""
        if (self.state_dir / STATE_FILE).exists():
            previous = LocalStack.load(self.state_dir)
            if alive := previous.running():
                raise SetupError(f"the {previous.topology.name} stack in {self.state_dir} is already running "
                                 f"({', '.join(alive)}): python app/stack.py down --state-dir {self.state_dir}")
        if strays := _working_in_data_dirs(self.state_dir):
            raise SetupError(f"processes {', '.join(map(str, strays))} still run in the data dirs of "
                             f"{self.state_dir} (an old stack?): python app/stack.py down --state-dir "
                             f"{self.state_dir}, or kill {' '.join(map(str, strays))}")

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

    def down(self) -> list[str]:
        """Stop every process of the stack (SIGTERM, grace, SIGKILL) and forget it; returns the partition
        chains a run left behind and that were removed with it (lib/faults/partition.py).

        Another process may have restarted a service meanwhile (python app/stack.py start, or a
        test script's fault restore), so the pids recorded on disk are stopped too, and so is any
        process working in a service's data dir (a restart whose pid never reached the disk); a pid
        is only signalled while it still runs the service's own binary (pids get reused).
        A stack whose `up` was refused never started anything, so its down() touches nothing.
        """
        if not self._owns_state:
            return []
        on_disk = {}
        if (self.state_dir / STATE_FILE).exists():
            with contextlib.suppress(SetupError):  # unreadable: the working dirs below still find the strays
                on_disk = LocalStack.load(self.state_dir).services
        working = process.working_under(self.state_dir)
        for name, svc in reversed(list(self.services.items())):
            data_dir = Path(svc.data_dir).resolve()
            pids = {svc.pid, on_disk[name].pid if name in on_disk else None} - {None, 0}
            pids |= {pid for pid, cwd in working.items() if cwd == data_dir}
            for pid in sorted(pids):
                if _runs(pid, svc.argv):
                    process.stop(pid)
        state = self.state_dir / STATE_FILE
        if state.exists():
            state.unlink()
        return remove_iptables_chains(partition_chain(svc.port) for svc in self.services.values() if svc.port)

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
        from lib.launcher.readiness import wait_pingable

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
    """Every stack recorded under root (default: state_root()), running or half-dead.

    A state file that cannot be read is not skipped in silence: that is a one-line SetupError
    (use recorded_stacks() to get the readable stacks as well).
    """
    stacks, unreadable = recorded_stacks(root)
    if unreadable:
        raise SetupError("; ".join(unreadable))
    return stacks


def recorded_stacks(root: Path | None = None) -> tuple[list[LocalStack], list[str]]:
    """The stacks recorded under root, and one line for each state file that could not be read.

    status and down show and stop the readable stacks, then report the others.
    """
    root = state_root() if root is None else root
    stacks: list[LocalStack] = []
    unreadable: list[str] = []
    for path in sorted(root.glob(f"*/{STATE_FILE}")) if root.exists() else []:
        try:
            stacks.append(LocalStack.load(path.parent))
        except SetupError as exc:
            unreadable.append(str(exc))
    return stacks, unreadable


def _unreadable(path: Path, why: str) -> str:
    """One line: which state file, what is wrong, and how to get rid of it safely."""
    strays = _working_in_data_dirs(path.parent)
    stop = (f"stop what still runs there (kill {' '.join(map(str, strays))}), then " if strays
            else "nothing runs in its directory: ")
    return f"state file {path} {why}: {stop}remove it (rm {path})"


# ---- the state directory --------------------------------------------------------------------

def check_state_dir(state_dir: Path) -> None:
    """Refuse a state dir the launcher must not write into (it would later delete what it made there)."""
    if state_dir.exists() and not state_dir.is_dir():
        raise SetupError(f"state dir {state_dir} is a file: give a new or empty directory with --state-dir")
    if (state_dir / MARKER_FILE).exists():
        _marked_entries(state_dir)
        return
    if _legacy_entries(state_dir):
        return
    if state_dir.exists() and (held := sorted(p.name for p in state_dir.iterdir())):
        shown = ", ".join(held[:3]) + (", ..." if len(held) > 3 else "")
        raise SetupError(f"{state_dir} is not empty ({shown}) and is not a stack state directory (no {MARKER_FILE}): "
                         f"give a new or empty directory (e.g. --state-dir {state_dir / 'stack'}), or empty it "
                         "yourself if it only holds an old stack's files (the launcher deletes only what it made)")


def claim_state_dir(state_dir: Path, entries: Iterable[str]) -> None:
    """Make state_dir ready for a new stack: create it, or adopt it empty, or clear what we made before.

    Only the entries named in the marker (what an earlier `up` made) are removed, never the
    directory itself nor anything else in it: --state-dir may name a directory of the user's.
    """
    check_state_dir(state_dir)
    made_before = _marked_entries(state_dir) if (state_dir / MARKER_FILE).exists() else _legacy_entries(state_dir)
    for name in made_before:
        _remove(state_dir / name)
    state_dir.mkdir(parents=True, exist_ok=True)
    body = {"made_by": "python app/stack.py (valkey-ha-and-cluster local launcher)",
            "entries": sorted(set(entries))}
    (state_dir / MARKER_FILE).write_text(json.dumps(body, indent=2) + "\n")


def _legacy_entries(state_dir: Path) -> list[str]:
    """A stack dir made before the marker existed (an older checkout's .stack/ha): state.json and only
    names the launcher makes (service data dirs, logs, rendered configs). Anything else: not ours."""
    if not (state_dir / STATE_FILE).is_file():
        return []
    from lib.topology.topology import TOPOLOGY_FILES

    ours = {*LAUNCHER_ENTRIES, STATE_FILE + ".tmp"}
    for name in TOPOLOGY_FILES:
        ours |= set(load_topology(name).services)
    held = [p.name for p in state_dir.iterdir()]
    return held if set(held) <= ours else []


def _marked_entries(state_dir: Path) -> list[str]:
    marker = state_dir / MARKER_FILE
    try:
        entries = json.loads(marker.read_text())["entries"]
        if not all(isinstance(e, str) and e and Path(e).name == e and e not in (".", "..") for e in entries):
            raise ValueError("an entry is not a plain name")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SetupError(f"marker {marker} is unreadable ({exc}): check what {state_dir} holds, "
                         "then remove the directory yourself or give another --state-dir") from None
    return entries


def _remove(path: Path) -> None:
    """Delete a file or a directory tree; a symlink is removed itself, never followed."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _working_in_data_dirs(state_dir: Path) -> list[int]:
    """Pids working in a direct subdirectory of state_dir: where the launcher runs each service."""
    root = Path(state_dir).resolve()
    return sorted(pid for pid, cwd in process.working_under(root).items() if cwd.parent == root)


def _runs(pid: int, argv: list[str]) -> bool:
    """pid is alive and runs argv[0] (servers rewrite their title, so compare the start only)."""
    return process.is_alive(pid) and " ".join(process.cmdline(pid)).startswith(argv[0])


# ---- partition rules (lib/faults/partition.py) that a run left behind ----------------------------

PARTITION_CHAIN_PREFIX = "VHC-PARTITION-"
IPTABLES = ("iptables", "-w", "5")  # -w: wait for the xtables lock that concurrent runs may hold
RunCommand = Callable[[list[str]], subprocess.CompletedProcess]


def partition_chain(port: int) -> str:
    """The chain that cuts the service on port off from its peers: named so that down() finds it from the port."""
    return f"{PARTITION_CHAIN_PREFIX}{port}"


def run_command(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


def remove_iptables_chains(chains: Iterable[str], iptables: Sequence[str] = IPTABLES,
                           run: RunCommand = run_command) -> list[str]:
    """Delete these chains and every jump to them; returns those that existed (absent ones are fine).

    iptables may start with nsenter (a container's namespace). Without iptables or root no rule can
    have been added, so nothing is done and nothing is said: every down() calls this.
    """
    present: list[str] = []
    try:
        listing = run([*iptables, "-S"])
        if listing.returncode != 0:
            return []
        rules = [shlex.split(line) for line in listing.stdout.splitlines()]
        present = [chain for chain in dict.fromkeys(chains) if ["-N", chain] in rules]
        for rule in rules:
            if rule[:1] == ["-A"] and rule[-2:-1] == ["-j"] and rule[-1] in present:
                run([*iptables, "-D", *rule[1:]])
        for chain in present:
            run([*iptables, "-F", chain])
            run([*iptables, "-X", chain])
    except (OSError, subprocess.SubprocessError):
        pass  # the caller's check (partition.restore, leftover_rules) sees what is still there
    return present
