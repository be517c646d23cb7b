"""What every compared client library offers a failover run: open one client, write, close, say what it did.

A run writes through several libraries at once (one writer per shard, the same rate, a key prefix per
library), so that the same failover is seen by each. Each library lives in its own module here; this one
is the contract between them and the run, and the registry that opens them by name.

Errors: a library's own exceptions are translated into ClientOpError (lib/history.py), which carries the
outcome the history needs (fail: surely not applied; unknown: may have been) and the library's error type,
so the writer loop and the checks never import a client library.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from lib.history import ClientOpError  # noqa: F401 - re-exported: the libraries raise it

Address = tuple[str, int]

OURS, REDIS_PY, VALKEY_PY, GLIDE = "ours", "redis-py", "valkey-py", "glide"
CLIENTS = (OURS, REDIS_PY, VALKEY_PY, GLIDE)
# module (in this package) and the distribution whose version the report prints
_MODULES = {OURS: ("ours", "redis"), REDIS_PY: ("redis_py", "redis"), VALKEY_PY: ("valkey_py", "valkey"),
            GLIDE: ("glide", "valkey-glide-sync")}
INSTALL_HINT = "pip install -r app/requirements.txt (it pins redis, valkey and valkey-glide-sync)"


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: list[Address]
    master_name: str
    remap: Callable[[Address], Address]  # announced address -> one this machine reaches (compose names)
    password: str | None = None
    sentinel_password: str | None = None


@dataclass(frozen=True)
class ClusterTarget:
    seeds: list[Address]
    host_map: dict[str, str]  # announced host -> reachable host (compose service names); {} locally
    password: str | None = None


class ClientLibrary(Protocol):
    """One open client of one library. Shared by the writer threads of every shard, as an application
    shares one client: a library that stalls all shards while one fails over shows it."""

    name: str  # "glide"
    version: str  # the installed package's version, e.g. "2.6.0"
    notes: list[str]  # what this library cannot do or does differently, in words, for the report row

    def set(self, key: str, value: str) -> None: ...  # raises ClientOpError on failure

    def refreshes(self) -> int | None: ...  # topology refreshes it made, counted in the client; None: not observable

    def close(self) -> None: ...


def client_names(text: str) -> list[str]:
    """'redis-py,glide' -> ['redis-py', 'glide'], in the order given; ValueError names the unknown one."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError(f"no client named: choose from {', '.join(CLIENTS)}")
    for name in names:
        if name not in CLIENTS:
            raise ValueError(f"unknown client {name!r}: choose from {', '.join(CLIENTS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"a client is named twice in {text!r}")
    return names


def library_module(name: str):
    """The module implementing a client by name; ImportError says how to install what it needs."""
    module, dist = _MODULES[name]
    try:
        return importlib.import_module(f"lib.clients.libraries.{module}")
    except ImportError as exc:
        raise ImportError(f"client {name} needs the {dist} package ({exc}): {INSTALL_HINT}") from exc


def package_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def open_sentinel(name: str, target: SentinelTarget, client_name: str) -> ClientLibrary:
    """A client of the master the sentinels name. client_name is set on every connection (CLIENT SETNAME)
    so that the servers' CLIENT LIST tells the libraries apart."""
    return library_module(name).open_sentinel(target, client_name)


def open_cluster(name: str, target: ClusterTarget, client_name: str) -> ClientLibrary:
    """A cluster client seeded with target.seeds; client_name as in open_sentinel."""
    return library_module(name).open_cluster(target, client_name)
