"""Small helpers shared by the launcher, clients and suites: endpoints, ports, key namespaces."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

from lib.report import SetupError

REPO_ROOT = Path(__file__).resolve().parents[2]


def parse_endpoint(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """'host:port' (or ':port', or '[v6]:port') -> (host, port); a bad value is a SetupError."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise SetupError(f"bad endpoint {text!r}: expected HOST:PORT, e.g. 127.0.0.1:26379")
    return (host.strip("[]") or default_host), int(port_text)


def format_endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(count: int, *, also_free_offset: int | None = None) -> list[int]:
    """Ports that are free now; with also_free_offset, port+offset is free too (cluster bus ports)."""
    chosen: list[int] = []
    attempts = 0
    while len(chosen) < count:
        attempts += 1
        if attempts > 1000:
            raise SetupError(f"could not find {count} free local ports")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if also_free_offset is not None and (port + also_free_offset > 65535
                                             or not port_is_free(port + also_free_offset)):
            continue
        if port not in chosen:
            chosen.append(port)
    return chosen


def key_namespace(suite: str) -> str:
    """A unique key prefix for one run, so the harness only ever touches keys it created."""
    return f"vhc:{suite}:{os.getpid()}-{uuid.uuid4().hex[:8]}:"


def tail(path: str | Path, lines: int = 15) -> str:
    try:
        content = Path(path).read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(content[-lines:])
