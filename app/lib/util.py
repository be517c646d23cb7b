"""Small helpers shared by the launcher, clients and suites: endpoints, ports, key namespaces."""

from __future__ import annotations

import os
import random
import socket
import uuid
from pathlib import Path
from typing import Any

import redis

from lib.errors import SetupError

REPO_ROOT = Path(__file__).resolve().parents[2]


def parse_endpoint(text: str, default_host: str = "127.0.0.1", example: str = "127.0.0.1:6379") -> tuple[str, int]:
    """'host:port' (or ':port', or '[v6]:port') -> (host, port); a bad value is a SetupError."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise SetupError(f"bad endpoint {text!r}: expected HOST:PORT, e.g. {example}")
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


# Server ports for tests and --free-ports: below the ephemeral range (32768-60999 here), where an
# outgoing connection can take a port between "it is free" and "the server binds it" (field notes:
# a sentinel once failed with "Address already in use"). The cluster bus (port + 10000) must stay
# below 32768 too, and the compose stacks' fixed ports (6379-6381, 7000-7005, 17000-17005,
# 26379-26381) are outside this range so a test never collides with a running compose stack.
FREE_PORT_RANGE = (20000, 22768)
# LOW-HIGH, a slice of FREE_PORT_RANGE: each parallel test worker draws from its own (tests/conftest.py), so no
# stack of one takes a port of another's, not even the port of a killed server that is about to be restarted.
FREE_PORT_RANGE_ENV = "VHC_FREE_PORT_RANGE"


def free_port_range() -> tuple[int, int]:
    value = os.environ.get(FREE_PORT_RANGE_ENV, "")
    low, sep, high = value.partition("-")
    if not value:
        return FREE_PORT_RANGE
    if not (sep and low.isdigit() and high.isdigit()
            and FREE_PORT_RANGE[0] <= int(low) < int(high) <= FREE_PORT_RANGE[1]):
        raise SetupError(f"${FREE_PORT_RANGE_ENV}={value!r}: expected LOW-HIGH within "
                         f"{FREE_PORT_RANGE[0]}-{FREE_PORT_RANGE[1]}, or leave it unset")
    return int(low), int(high)


def free_ports(count: int, *, also_free_offset: int | None = None) -> list[int]:
    """Ports that are free now, below the ephemeral range; with also_free_offset, port+offset is free too."""
    low, high = free_port_range()
    rng = random.Random()
    chosen: list[int] = []
    for _ in range(1000):
        if len(chosen) == count:
            return chosen
        port = rng.randrange(low, high)
        if port in chosen or not port_is_free(port):
            continue
        if also_free_offset is not None and not port_is_free(port + also_free_offset):
            continue
        chosen.append(port)
    if len(chosen) == count:
        return chosen
    raise SetupError(f"could not find {count} free local ports in {low}-{high - 1}: stop old stacks "
                     "(python app/stack.py down) or whatever else listens there (ss -ltn)")


def key_namespace(suite: str) -> str:
    """A unique key prefix for one run, so the harness only ever touches keys it created."""
    return f"vhc:{suite}:{os.getpid()}-{uuid.uuid4().hex[:8]}:"


def tail(path: str | Path, lines: int = 15) -> str:
    try:
        content = Path(path).read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(content[-lines:])


def raw_command(client: redis.Redis, *args: Any) -> Any:
    """One command on a connection of client's pool, the reply as the server sent it.

    redis-py parses some replies with a response callback it owns (CLUSTER NODES becomes a dict
    without the announced hostname; COMMAND DOCS crashes its COMMAND parser in 8.1.0). The
    connection API (send_command, read_response) applies none, so no callback table is mutated.
    """
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_command(*args)
        reply = conn.read_response()
    except BaseException:
        conn.disconnect()  # a half-read reply must not reach the next caller
        raise
    finally:
        pool.release(conn)
    if isinstance(reply, redis.ResponseError):
        raise reply
    return reply
