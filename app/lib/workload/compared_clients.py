"""The compared client libraries' writers: each library writes beside the harness during one fault.

Every library gets one open client, shared by one writer per shard (as an application shares one
client), the same pause between writes, and a key prefix of its own, so the same failover is seen by
each and a library that stalls every shard while one fails over shows it. A library that cannot be
opened (not installed, no Sentinel support at all) becomes a row that says why, not a crash.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lib.history import History, Op
from lib.workload.workload import ContinuousWriter, stop_all

OpenClient = Callable[[str, str], object]  # (library name, client name) -> a ClientLibrary
KeyFor = Callable[[str, int], str]  # (prefix, seq) -> key, e.g. a key in one shard
WRITE_PAUSE_S = 0.002  # the harness writer's pause: the same rate for every library


@dataclass
class ComparedClient:
    """What one library did in the run; checks/client_rows.py turns it into a table row."""

    name: str
    prefix: str  # every key it wrote starts with this
    client_name: str  # CLIENT SETNAME on its connections, to count them on the servers
    version: str = ""
    notes: list[str] = field(default_factory=list)
    history: History = field(default_factory=History)
    open_error: str | None = None  # it could not even start: the row says this instead of numbers
    open_s: float | None = None
    refreshes: int | None = None  # counted in the client (None: not observable from outside it)

    def ops(self, group: str | None = None) -> list[Op]:
        ops = self.history.snapshot()
        return ops if group is None else [op for op in ops if op.group == group]


class ComparedClients:
    """Opens each library, runs a writer per group (shard) for each, stops and closes them all."""

    def __init__(self, names: list[str], open_client: OpenClient, groups: dict[str, KeyFor], namespace: str,
                 *, pause_s: float = WRITE_PAUSE_S):
        self.groups, self.pause_s, self._open = groups, pause_s, open_client
        self.clients = [ComparedClient(name, f"{namespace}c:{name}:", f"vhc-{name}") for name in names]
        self._libraries: dict[str, object] = {}
        self._loops: list[ContinuousWriter] = []

    def start(self) -> None:
        for client in self.clients:
            started = time.monotonic()
            try:
                library = self._open(client.name, client.client_name)
            except Exception as exc:  # noqa: BLE001 - any library's failure to start is a row, not a crash
                client.open_error = f"{type(exc).__name__}: {exc}"
                continue
            client.open_s = time.monotonic() - started
            client.version, client.notes = library.version, list(library.notes)  # type: ignore[attr-defined]
            self._libraries[client.name] = library
            for label, key_for in self.groups.items():
                loop = ContinuousWriter(_writer(library), _keys(key_for, client.prefix), client.history,
                                        pause_s=self.pause_s, group_for=_constant(label))
                loop.name = f"{client.name}-{label}"
                loop.start()
                self._loops.append(loop)

    def running(self) -> list[ComparedClient]:
        return [c for c in self.clients if c.open_error is None]

    def stop(self) -> None:
        """Stop every writer, count refreshes, close every library; the first writer crash is raised last."""
        try:
            stop_all(self._loops)
        finally:
            for client in self.clients:
                library = self._libraries.pop(client.name, None)
                if library is None:
                    continue
                with contextlib.suppress(Exception):
                    client.refreshes = library.refreshes()  # type: ignore[attr-defined]
                with contextlib.suppress(Exception):  # a library's close must not hide the run's result
                    library.close()  # type: ignore[attr-defined]


def _writer(library: object) -> Callable[[str, str], None]:
    return lambda key, value: library.set(key, value)  # type: ignore[attr-defined]


def _keys(key_for: KeyFor, prefix: str) -> Callable[[int], str]:
    return lambda seq: key_for(prefix, seq)


def _constant(label: str) -> Callable[[str], str]:
    return lambda key: label
