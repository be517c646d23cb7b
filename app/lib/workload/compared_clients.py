"""The compared client libraries' writers: each library writes beside the harness during one fault.

Every library gets one open client, shared by one writer thread per shard (as an application shares one
client), the same pause between writes, and a key prefix of its own, so the same failover is seen by
each, and a library that stalls every shard while one fails over shows it.

Each library runs in a process of its own (spawned, not forked: the parent has threads). In one process
the libraries would share one GIL with each other and with the harness, and a busy one would delay the
others' writes: the comparison would measure the interpreter, not the library. Its own process also
keeps a library's console output (GLIDE logs every failed command) in a log file instead of the report.
The child streams its operations back every ~50 ms, so the run can wait on them as on any history;
times are time.monotonic(), one clock for every process on the machine. A library that cannot be
opened (not installed, no server) becomes a row that says why, not a crash. A child whose parent dies
sees its pipe close and stops.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.history import History, Op
from lib.topology.cluster_topology import Shard, key_in_shard

# The same rate for every library: a write per shard every ~5 ms (the probes' rate). Four libraries and the
# harness writing every 2 ms saturated the 2 cores, and the scheduling delays then dwarfed the differences.
WRITE_PAUSE_S = 0.005
SEND_EVERY_S = 0.05  # how often a child sends its new operations
START_TIMEOUT_S = 60.0  # a library that has not opened by then is a row that says so
STOP_TIMEOUT_S = 20.0  # writers stop, the library closes; then the process is killed


@dataclass(frozen=True)
class Keys:
    """The keys of one group: in one shard (cluster), or any key (Sentinel). Picklable, for the child."""

    shard: Shard | None = None

    def __call__(self, prefix: str, seq: int) -> str:
        return key_in_shard(self.shard, prefix, seq) if self.shard is not None else f"{prefix}{seq}"


@dataclass(frozen=True)
class Opener:
    """How a child opens its library: kind "sentinel" or "cluster", and the target (picklable)."""

    kind: str
    target: Any  # lib.clients.libraries.base.SentinelTarget | ClusterTarget


CLIENT = "client {}"  # the process of a compared library's writes in the run's history
DESCRIBE = "describe"  # its observation: version, notes, open time or error, refreshes, log


@dataclass
class ComparedClient:
    """What one library did in the run: its writes go to the run's history as process `client NAME`."""

    name: str
    prefix: str  # every key it wrote starts with this
    client_name: str  # CLIENT SETNAME on its connections, to count them on the servers
    history: History  # the run's: its ops are those of its process
    version: str = ""
    notes: list[str] = field(default_factory=list)
    open_error: str | None = None  # it could not even start: the row says this instead of numbers
    open_s: float | None = None
    refreshes: int | None = None  # counted in the client (None: not observable from outside it)
    log: str | None = None  # where its process's console output went

    @property
    def process(self) -> str:
        return CLIENT.format(self.name)

    def ops(self, group: str | None = None) -> list[Op]:
        ops = self.history.snapshot(self.process)
        return ops if group is None else [op for op in ops if op.group == group]

    def describe(self) -> dict[str, Any]:
        """What the row needs besides the ops, recorded in the history when the library stops."""
        return {"version": self.version, "notes": list(self.notes), "open_error": self.open_error,
                "open_s": self.open_s, "refreshes": self.refreshes, "log": self.log}


class _Child:
    """The parent's end of one library's process: a reader thread records what the child sends."""

    def __init__(self, client: ComparedClient, process: Any, conn: Any):
        self.client, self.process, self.conn = client, process, conn
        self.opened = threading.Event()  # set on "opened" or on an open error
        self.done = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True, name=f"{client.name}-reader")

    def _read(self) -> None:
        try:
            while True:
                kind, payload = self.conn.recv()
                if kind == "ops":
                    for op in payload:
                        op.process = self.client.process
                        self.client.history.record(op)
                elif kind == "opened":
                    self.client.version, self.client.notes, self.client.open_s = payload
                    self.opened.set()
                elif kind == "open_error":
                    self.client.open_error = payload
                    self.opened.set()
                elif kind == "done":
                    self.client.refreshes = payload
                    return
        except (EOFError, OSError):  # the child ended without "done": a crash, said in the row
            if not self.opened.is_set():
                self.client.open_error = "its process ended before the library opened"
            self.opened.set()
        finally:
            self.done.set()


class ComparedClients:
    """Starts a process per library, streams its writes into its history, stops and reaps them all."""

    def __init__(self, names: list[str], opener: Opener, groups: dict[str, Keys], namespace: str, history: History,
                 *, pause_s: float = WRITE_PAUSE_S, log_dir: Path | None = None):
        self.groups, self.pause_s, self.opener = groups, pause_s, opener
        self.log_dir = log_dir
        self.clients = [ComparedClient(name, f"{namespace}c:{name}:", f"vhc-{name}", history) for name in names]
        self._children: list[_Child] = []

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Spawn every library's process, then wait (deadline) until each has opened or said why not."""
        context = multiprocessing.get_context("spawn")
        log_dir = self.log_dir or Path(os.environ.get("TMPDIR", "/tmp"))
        for client in self.clients:
            client.log = str(log_dir / f"vhc-client-{client.name}-{os.getpid()}.log")
            parent_end, child_end = context.Pipe()
            process = context.Process(target=child_main, name=f"client-{client.name}", daemon=True,
                                      args=(child_end, client.name, client.client_name, client.prefix,
                                            self.opener, self.groups, self.pause_s, client.log, sys.path))
            process.start()
            child_end.close()
            child = _Child(client, process, parent_end)
            child.reader.start()
            self._children.append(child)
        deadline = time.monotonic() + timeout
        for child in self._children:
            if not child.opened.wait(max(0.0, deadline - time.monotonic())):
                child.client.open_error = f"did not open within {timeout:.0f} s"

    def running(self) -> list[ComparedClient]:
        return [c for c in self.clients if c.open_error is None]

    def stop(self) -> None:
        """Ask every child to stop, wait for its last operations (deadline), then reap or kill it."""
        for child in self._children:
            with contextlib.suppress(OSError, ValueError):
                child.conn.send("stop")
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in self._children:
            child.done.wait(max(0.0, deadline - time.monotonic()))
            child.process.join(max(0.1, deadline - time.monotonic()))
            if child.process.is_alive():
                child.process.kill()
                child.process.join(5)
            with contextlib.suppress(OSError):
                child.conn.close()
            _drop_if_empty(child.client)
        for client in self.clients:
            client.history.observe(client.process, DESCRIBE, client.describe())
        self._children.clear()


def _drop_if_empty(client: ComparedClient) -> None:
    """A library that printed nothing leaves no log file behind (the row then names none)."""
    log = Path(client.log) if client.log else None
    if log is not None and log.is_file() and log.stat().st_size == 0:
        log.unlink()
        client.log = None


def child_main(conn: Any, name: str, client_name: str, prefix: str, opener: Opener, groups: dict[str, Keys],
               pause_s: float, log: str, path: list[str]) -> None:
    """In the library's process: open it, write per group until told to stop (or the parent is gone)."""
    sys.path[:] = path
    with open(log, "ab", buffering=0) as out:  # the library's console output (fds 1 and 2) goes here
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
    from lib.clients.libraries.base import open_cluster, open_sentinel
    from lib.workload.workload import ContinuousWriter, stop_all

    started = time.monotonic()
    try:
        library = (open_cluster if opener.kind == "cluster" else open_sentinel)(name, opener.target, client_name)
    except Exception as exc:  # noqa: BLE001 - any failure to open is the row's text
        conn.send(("open_error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("opened", (library.version, list(library.notes), time.monotonic() - started)))
    history = History()
    loops = []
    for label, keys in groups.items():
        loop = ContinuousWriter(library.set, _bound(keys, prefix), history, pause_s=pause_s,
                                group_for=_constant(label))
        loop.name = f"{name}-{label}"
        loop.start()
        loops.append(loop)
    sent = 0
    try:
        while not conn.poll(SEND_EVERY_S):  # the send rate; a message (or the parent gone) ends it
            ops = history.snapshot()
            if len(ops) > sent:
                conn.send(("ops", ops[sent:]))
                sent = len(ops)
    except (EOFError, OSError):
        pass
    with contextlib.suppress(Exception):
        stop_all(loops)
    ops = history.snapshot()
    refreshes = None
    with contextlib.suppress(Exception):
        refreshes = library.refreshes()
    with contextlib.suppress(Exception):
        library.close()
    with contextlib.suppress(EOFError, OSError):
        conn.send(("ops", ops[sent:]))
        conn.send(("done", refreshes))


def _bound(keys: Keys, prefix: str):
    return lambda seq: keys(prefix, seq)


def _constant(label: str):
    return lambda key: label
