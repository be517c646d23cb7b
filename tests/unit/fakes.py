"""Stand-ins for the clients the verdict functions call: just the methods they use, no server behind them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Address = tuple[str, int]


class FakeKV:
    """A redis.Redis over a dict: set (ex, xx), get, ttl, delete, mget; counts what it was asked."""

    def __init__(self, data: dict[str, str] | None = None, *, keeps_ttl: bool = True, deletes: bool = True):
        self.data = dict(data or {})
        self.ttls: dict[str, int] = {}
        self.keeps_ttl, self.deletes = keeps_ttl, deletes
        self.commands: list[tuple] = []

    def set(self, key: str, value: str, ex: int | None = None, xx: bool = False):
        self.commands.append(("SET", key, value))
        if xx and key not in self.data:
            return None
        self.data[key] = value
        if ex is not None and self.keeps_ttl:
            self.ttls[key] = ex
        return True

    def get(self, key: str):
        return self.data.get(key)

    def ttl(self, key: str) -> int:
        if key not in self.data:
            return -2
        return self.ttls.get(key, -1)

    def delete(self, *keys: str) -> int:
        if not self.deletes:
            return 0
        found = [k for k in keys if k in self.data]
        for key in found:
            del self.data[key]
            self.ttls.pop(key, None)
        return len(found)

    def mget(self, keys: list[str]) -> list[str | None]:
        self.commands.append(("MGET", *keys))
        return [self.data.get(k) for k in keys]

    def close(self) -> None:
        pass


class FakeNode:
    """A plain client to one node that answers INFO replication (a list of replies: one per call, last repeats)."""

    def __init__(self, *replication: dict, on_command: Callable[..., Any] | None = None):
        self.replies = list(replication)
        self.on_command = on_command
        self.closed = False

    def info(self, section: str = "") -> dict:
        assert section == "replication", f"only INFO replication is faked, asked {section!r}"
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    def execute_command(self, *args):
        if self.on_command is None:
            raise AssertionError(f"unexpected command {args}")
        return self.on_command(*args)

    def close(self) -> None:
        self.closed = True


class FakeSentinel:
    """A plain client to a sentinel that knows the master's replicas (SENTINEL REPLICAS) and its state."""

    def __init__(self, replicas: list[Address] = (), master: dict | None = None):
        self.replicas, self.master = list(replicas), master or {}
        self.closed = False

    def sentinel_slaves(self, name: str) -> list[dict]:
        return [{"ip": host, "port": port} for host, port in self.replicas]

    def sentinel_master(self, name: str) -> dict:
        return dict(self.master)

    def close(self) -> None:
        self.closed = True


class FakeHA:
    """lib.ha_client.HAClient's surface: the master, what the sentinels say, and plain clients by address."""

    master_name = "myvalkey"
    password = None

    def __init__(self, *, master: FakeKV | None = None, master_address: Address = ("10.0.0.1", 6379),
                 announced: Address | None = None, views: dict[str, str] | None = None,
                 nodes: dict[Address, FakeNode] | None = None, remap: dict[str, str] | None = None,
                 sentinel_addresses: list[Address] | None = None):
        self._master = master or FakeKV()
        self._master_address = master_address
        self._announced = announced or master_address
        self._views = views
        self.nodes = nodes or {}
        self.host_map = remap or {}
        self.sentinel_addresses = sentinel_addresses or [("10.0.0.9", 26379)]
        self.nodes_asked: list[Address] = []
        self.switches_followed = 0

    def master(self) -> FakeKV:
        return self._master

    def master_address(self) -> Address:
        return self._master_address

    def announced_master(self) -> Address:
        return self._announced

    def sentinel_views(self) -> dict[str, str]:
        if self._views is None:
            raise AssertionError("the check was not expected to ask the sentinels")
        return dict(self._views)

    def remap(self, address: Address) -> Address:
        return self.host_map.get(address[0], address[0]), address[1]

    def node(self, address: Address, timeout: float = 1.0, *, sentinel: bool = False) -> FakeNode:
        self.nodes_asked.append(tuple(address))
        if tuple(address) not in self.nodes:
            raise AssertionError(f"no fake node at {address}; have {sorted(self.nodes)}")
        return self.nodes[tuple(address)]


def replication_info(role: str = "master", offset: int = 1000, replicas: list[tuple[str, int, str, int]] = (),
                     **extra) -> dict:
    """INFO replication as redis-py parses it: slaveN entries are dicts (ip, port, state, offset, lag)."""
    info: dict = {"role": role, "master_repl_offset": offset, "connected_slaves": len(replicas), **extra}
    for i, (ip, port, state, replica_offset) in enumerate(replicas):
        info[f"slave{i}"] = {"ip": ip, "port": port, "state": state, "offset": replica_offset, "lag": 0}
    return info


class RecordingOutput:
    """lib.suites.skeleton.Output that keeps what a suite showed, warned and notified instead of rendering it."""

    def __init__(self):
        self.shown: list[Any] = []
        self.warnings: list[str] = []
        self.notices: list[Any] = []

    def show(self, renderable: Any) -> None:
        self.shown.append(renderable)

    def warn(self, line: str) -> None:
        self.warnings.append(line)

    def notify(self, notice: Any) -> None:
        self.notices.append(notice)

    def finish(self, report, json_path: str | None) -> int:
        return report.exit_code()

    def run_undoing_interrupts(self, body: Callable[[], int], undo: Callable[[], list[str]]) -> int:
        return body()

    def close(self) -> None:
        pass
