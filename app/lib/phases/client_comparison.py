"""Compared client libraries around one fault: their writers, and what the servers counted of them.

A failover run (ha_failover.py, cluster_failover.py) starts this beside its own writer when the user
asks for `--client ...`, waits (after its own recovery) until every library wrote again to every shard
or a deadline passed, and stops it. The rows are judged afterwards by lib/checks/client_rows.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lib.clients.server_counters import ClientListSampler, CountDelta, delta, snapshot
from lib.history import HARNESS, OK, History, Op
from lib.waits import WaitTimeout, wait_until
from lib.workload.compared_clients import CLIENT, DESCRIBE, ComparedClient, ComparedClients, Keys, Opener

Address = tuple[str, int]
LANDED_CHECKED = 5  # the newest acknowledged keys of a group looked up where the data lives now
DEFAULT_CLIENT_TIMEOUT_S = 30.0  # after the promotion: a library still not writing by then is reported so
COMPARED = "compared clients"  # the harness's observation of them: groups, what the servers counted, who lagged


@dataclass
class ClientComparison:
    writers: ComparedClients
    nodes: Callable[[], list[Address]]  # every server to count on (data nodes, and sentinels for HA)
    password: str | None
    timeout_s: float = DEFAULT_CLIENT_TIMEOUT_S
    counts_note: str = ""  # what the server counts cannot show here, in words
    # keys -> whether each is on the node that serves them now. Set for Sentinel: after a plain SENTINEL
    # FAILOVER the old master keeps acknowledging writes (then loses them) until it is demoted, so a client
    # has written again only once its writes reach the new master.
    landed: Callable[[list[str]], list[bool]] | None = None
    sampler: ClientListSampler | None = None
    counts: CountDelta | None = None
    waited_from: float | None = None  # the promotion the libraries were waited for
    not_recovered: dict[str, list[str]] = field(default_factory=dict)  # library -> groups not written again
    _before: dict = field(default_factory=dict)

    @property
    def clients(self) -> list[ComparedClient]:
        return self.writers.clients

    def start(self) -> None:
        self._before = snapshot(self.nodes(), self.password)
        self.sampler = ClientListSampler(self.nodes, self.password, [c.client_name for c in self.clients])
        self.sampler.start()
        self.writers.start()

    def wait_warm(self, ops_per_group: int, timeout: float = 30.0) -> None:
        """Every running library has acknowledged writes in every group before the fault (a library that
        needs long to connect must not start its measurement inside the outage)."""
        def cold() -> dict[str, list[str]]:
            out = {}
            for client in self.writers.running():
                counts = {g: 0 for g in self.writers.groups}
                for op in client.ops():
                    if op.outcome == OK and op.group in counts:
                        counts[op.group] += 1
                if low := [g for g, n in counts.items() if n < ops_per_group]:
                    out[client.name] = low
            return out

        wait_until(lambda: (not (left := cold()), f"fewer than {ops_per_group} acknowledged writes: {left}"),
                   timeout=timeout, what="every compared client writing to every shard before the fault")

    def wait_recovered(self, since: float) -> None:
        """Until every running library has a write acknowledged after `since` in every group.

        Not an error when it does not happen: a library that cannot follow a failover is a finding, so
        the groups each one never wrote again are kept for its row.
        """
        self.waited_from = since

        def missing() -> dict[str, list[str]]:
            out = {}
            for client in self.writers.running():
                acked = [op for op in client.ops() if op.outcome == OK and op.end >= since]
                wrote = {op.group for op in acked}
                if self.landed is not None:  # acknowledged is not enough: it must be where the data now lives
                    wrote = {group for group in wrote
                             if any(self._landed([op.key for op in acked if op.group == group][-LANDED_CHECKED:]))}
                if gaps := [g for g in self.writers.groups if g not in wrote]:
                    out[client.name] = gaps
            return out

        try:
            wait_until(lambda: (not (left := missing()), f"not written again: {left}"),
                       timeout=max(0.0, since + self.timeout_s - time.monotonic()),
                       what="every compared client writing to every shard again")
        except WaitTimeout:
            self.not_recovered = missing()

    def _landed(self, keys: list[str]) -> list[bool]:
        try:
            return self.landed(keys) if self.landed is not None and keys else []
        except Exception:  # noqa: BLE001 - the new master not answering yet: not landed, ask again later
            return []

    def stop(self) -> None:
        try:
            if self.sampler is not None:
                self.sampler.stop()
        finally:
            self.writers.stop()
            self.counts = delta(self._before, snapshot(self.nodes(), self.password))
            self.history.observe(HARNESS, COMPARED, {
                "clients": [c.name for c in self.clients], "groups": list(self.writers.groups),
                "timeout_s": self.timeout_s, "counts": self.counts.metrics() if self.counts else None,
                "counts_note": self.counts_note, "not_recovered": self.not_recovered,
                "waited": self.waited_from is not None,
                "connections": {c.name: self.connections(c) for c in self.clients}})

    @property
    def history(self) -> History:
        return self.clients[0].history

    def connections(self, client: ComparedClient) -> int | None:
        return self.sampler.connections(client.client_name) if self.sampler is not None else None


@dataclass
class ComparedView:
    """The compared libraries of a recorded run, read from its history alone (what client_rows judges)."""

    clients: list[LibraryView]
    groups: list[str]
    timeout_s: float
    counts: dict | None
    counts_note: str
    not_recovered: dict[str, list[str]]
    waited: bool

    @classmethod
    def from_history(cls, history: History) -> ComparedView | None:
        seen = history.observed(HARNESS, COMPARED)
        if seen is None:
            return None
        value = seen.value
        libraries = []
        for name in value["clients"]:
            described = history.observed(CLIENT.format(name), DESCRIBE)
            libraries.append(LibraryView(name, history, value["connections"].get(name),
                                         **(described.value if described is not None else {})))
        return cls(libraries, list(value["groups"]), float(value["timeout_s"]), value.get("counts"),
                   value.get("counts_note", ""), dict(value.get("not_recovered") or {}), bool(value.get("waited")))


@dataclass
class LibraryView:
    """One compared library as recorded: its ops (process `client NAME`) and what it said of itself."""

    name: str
    history: History
    connections: int | None = None
    version: str = ""
    notes: list[str] = field(default_factory=list)
    open_error: str | None = None
    open_s: float | None = None
    refreshes: int | None = None
    log: str | None = None

    def ops(self, group: str | None = None) -> list[Op]:
        ops = self.history.snapshot(CLIENT.format(self.name), "write")
        return ops if group is None else [op for op in ops if op.group == group]


def client_comparison(names: list[str], opener: Opener, groups: dict[str, Keys], namespace: str, history: History,
                      nodes: Callable[[], list[Address]], password: str | None,
                      timeout_s: float = DEFAULT_CLIENT_TIMEOUT_S) -> ClientComparison:
    return ClientComparison(ComparedClients(names, opener, groups, namespace, history), nodes, password, timeout_s)
