"""What the servers saw of the clients during a run: topology queries and connections, counted server-side.

A refresh storm (a client re-reading the slot map on every error) or a reconnect loop shows on the
servers whatever the library reveals of itself, so these are counted there:
- INFO commandstats deltas of the topology commands (CLUSTER SLOTS/SHARDS/NODES, SENTINEL ...) and
  INFO stats total_connections_received, per node, before and after the run: every client together
  (commandstats are not per client);
- CLIENT LIST sampled through the run: the connections each compared library opened, told apart by
  the name it set (CLIENT SETNAME), so connections are per library. A connection that opened and closed
  between two samples is missed, so these are lower bounds (the report says "at least").
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from lib.clients.probe import plain_client
from lib.util import format_endpoint

Address = tuple[str, int]
TOPOLOGY_COMMANDS = ("cluster|slots", "cluster|shards", "cluster|nodes", "sentinel|get-master-addr-by-name",
                     "sentinel|masters", "sentinel|master", "sentinel|replicas", "sentinel|slaves",
                     "sentinel|sentinels")
SAMPLE_EVERY_S = 0.1


def _client(address: Address, password: str | None) -> redis.Redis:
    return plain_client(address, password, timeout=0.3)  # one attempt, short timeouts: a dead node is skipped


@dataclass
class NodeCounts:
    commands: dict[str, int]  # topology command -> calls since the node started
    connections: int  # total_connections_received since the node started


def read_counts(address: Address, password: str | None) -> NodeCounts | None:
    """One node's counters now; None when it does not answer (killed, paused, cut off)."""
    with _client(address, password) as client:
        try:
            stats = client.info("commandstats")
            connections = int(client.info("stats").get("total_connections_received", 0))
        except (redis.RedisError, OSError):
            return None
    commands = {}
    for name in TOPOLOGY_COMMANDS:
        entry = stats.get(f"cmdstat_{name}")
        if isinstance(entry, dict):
            commands[name] = int(entry.get("calls", 0))
    return NodeCounts(commands, connections)


@dataclass
class CountDelta:
    """Every client's topology queries and new connections on the servers during the run."""

    commands: dict[str, int] = field(default_factory=dict)
    connections: int = 0
    nodes_counted: int = 0
    nodes_missing: list[str] = field(default_factory=list)  # no answer before or after: not in the sums

    def metrics(self) -> dict:
        return {"topology_commands": self.commands, "topology_commands_total": sum(self.commands.values()),
                "connections_received": self.connections, "nodes_counted": self.nodes_counted,
                "nodes_missing": self.nodes_missing}


def delta(before: dict[Address, NodeCounts | None], after: dict[Address, NodeCounts | None]) -> CountDelta:
    """after - before per node; a node restarted in between (counters went down) counts from zero."""
    out = CountDelta()
    for address in before.keys() | after.keys():
        first, last = before.get(address), after.get(address)
        if first is None or last is None:
            out.nodes_missing.append(format_endpoint(*address))
            continue
        restarted = last.connections < first.connections
        out.nodes_counted += 1
        out.connections += last.connections - (0 if restarted else first.connections)
        for name, calls in last.commands.items():
            grown = calls - (0 if restarted else first.commands.get(name, 0))
            if grown:
                out.commands[name] = out.commands.get(name, 0) + grown
    out.nodes_missing.sort()
    return out


def snapshot(nodes: list[Address], password: str | None) -> dict[Address, NodeCounts | None]:
    return {address: read_counts(address, password) for address in nodes}


class ClientListSampler(threading.Thread):
    """Samples CLIENT LIST on every node and keeps, per client name, the connections seen (node, id)."""

    def __init__(self, nodes: Callable[[], list[Address]], password: str | None, names: list[str], *,
                 every_s: float = SAMPLE_EVERY_S):
        super().__init__(daemon=True, name="client-list-sampler")
        self.nodes, self.password, self.every_s = nodes, password, every_s
        self.seen: dict[str, set[tuple[Address, str]]] = {name: set() for name in names}
        self.samples = 0
        self._clients: dict[Address, redis.Redis] = {}
        self._halt = threading.Event()

    def sample(self) -> None:
        for address in self.nodes():
            client = self._clients.get(address)
            if client is None:  # setdefault would build (and drop) a client on every sample
                client = self._clients[address] = _client(address, self.password)
            try:
                listed = client.client_list()
            except (redis.RedisError, OSError):
                continue  # a node that is down has no connection to count
            for entry in listed:
                if entry.get("name") in self.seen:
                    self.seen[entry["name"]].add((address, str(entry.get("id"))))
        self.samples += 1

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.every_s)  # the sampling rate, not a synchronisation

    def stop(self) -> None:
        self._halt.set()
        if self.ident is not None:
            self.join(10)
        with contextlib.suppress(Exception):
            self.sample()  # the last connections, after every writer stopped but before they close
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                client.close()

    def connections(self, name: str) -> int:
        return len(self.seen.get(name, ()))
