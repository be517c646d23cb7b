"""What the local launcher's readiness check (lib/launcher/readiness.py) waits for, per service, without servers.

The parity tests compare it with each compose service's healthcheck: `docker-compose up --wait` and
`stack.py up` must call a stack ready on the same conditions. Every faked reply is "not yet" the
first time a condition is asked and "ready" after, so a condition counts as waited for only if
readiness polled it until it held (asking once and ignoring the answer does not count).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import redis

from lib.launcher import readiness
from lib.launcher.local_stack import ServiceState
from lib.topology.topology import load_topology, local_plan

PING, LINK_UP, SENTINEL_MASTERS, CLUSTER_OK, JOB = ("PING", "master_link_status:up", "SENTINEL MASTERS",
                                                     "cluster_state:ok", "job ran")
FAKE_BINARIES = {"valkey-server": "VALKEY", "redis-server": "REDIS", "python": "PYTHON"}

# A compose healthcheck test -> (the condition it waits for, the port it asks, the master name if any).
HEALTHCHECKS = [
    (re.compile(r"(?:valkey|redis)-cli -p (?P<port>\d+) ping"), PING),
    (re.compile(r"valkey-cli -p (?P<port>\d+) info replication \| grep -q master_link_status:up"), LINK_UP),
    (re.compile(r"valkey-cli -p (?P<port>\d+) sentinel master (?P<name>\S+) \| grep -q (?P=name)"), SENTINEL_MASTERS),
]


def healthcheck_condition(test: list[str]) -> tuple[str, int, str | None]:
    """["CMD", "valkey-cli", "-p", "6379", "ping"] or ["CMD-SHELL", "..."] -> (condition, port, master name)."""
    kind, *rest = test
    command = " ".join(rest) if kind == "CMD" else rest[0]
    for pattern, condition in HEALTHCHECKS:
        if match := pattern.fullmatch(command):
            return condition, int(match["port"]), match.groupdict().get("name")
    raise AssertionError(f"a healthcheck this test does not know: {test}")


@dataclass
class Recorder:
    """The faked replies, and the log of (service, condition, ready?) in the order readiness asked."""

    replicas: set[str]
    sentinels: set[str]
    log: list[tuple[str, str, bool]] = field(default_factory=list)
    asked: Counter = field(default_factory=Counter)

    def ask(self, service: str, condition: str) -> bool:
        self.asked[(service, condition)] += 1
        ready = self.asked[(service, condition)] > 1
        self.log.append((service, condition, ready))
        return ready

    def waited_for(self) -> dict[str, list[str]]:
        """service -> conditions polled until they held, in order."""
        found: dict[str, list[str]] = {}
        for service, condition, ready in self.log:
            if ready and condition not in found.setdefault(service, []):
                found[service].append(condition)
        return found


class RecordingClient:
    def __init__(self, recorder: Recorder, service: str):
        self.recorder, self.service = recorder, service

    def ping(self) -> bool:
        if not self.recorder.ask(self.service, PING):
            raise redis.ConnectionError("Error 111 connecting: Connection refused.")
        return True

    def info(self, section: str = "") -> dict:
        if self.service not in self.recorder.replicas:
            return {"role": "master"}
        up = self.recorder.ask(self.service, LINK_UP)
        return {"role": "slave", "master_link_status": "up" if up else "down"}

    def sentinel_masters(self) -> dict:
        known = self.recorder.ask(self.service, SENTINEL_MASTERS)
        return {"myvalkey": {"ip": "127.0.0.1", "port": 1, "num-slaves": len(self.recorder.replicas) if known else 0,
                             "num-other-sentinels": len(self.recorder.sentinels) - 1}}

    def cluster(self, subcommand: str) -> dict:
        ok = self.recorder.ask(self.service, CLUSTER_OK)
        return {"cluster_state": "ok" if ok else "fail", "cluster_slots_assigned": "16384" if ok else "0"}

    def close(self) -> None:
        pass

    def __enter__(self) -> RecordingClient:
        return self

    def __exit__(self, *exc) -> None:
        pass


class PlannedStack:
    """The part of LocalStack that readiness reads, built from local_plan: nothing is started."""

    def __init__(self, topology_name: str, stack_dir: Path, port_map: dict[int, int]):
        self.topology = load_topology(topology_name)
        self.services: dict[str, ServiceState] = {}
        for service in self.topology.start_order():
            plan = local_plan(self.topology, service, stack_dir=stack_dir, port_map=port_map, binaries=FAKE_BINARIES)
            self.services[service.name] = ServiceState(service.name, service.kind, plan.port, list(plan.argv),
                                                       str(plan.data_dir), str(stack_dir / f"{service.name}.log"),
                                                       pid=os.getpid())

    def service(self, name: str) -> ServiceState:
        return self.services[name]

    def endpoint(self, name: str) -> tuple[str, int]:
        return "127.0.0.1", self.services[name].port

    def log_tail(self, name: str) -> str:
        return ""


def readiness_waits(topology_name: str, stack_dir: Path, port_map: dict[int, int], monkeypatch) -> Recorder:
    """Run lib.launcher.readiness.wait_ready on the planned stack with recording clients; jobs are recorded, not run."""
    stack = PlannedStack(topology_name, stack_dir, port_map)
    by_port = {svc.port: name for name, svc in stack.services.items() if svc.port}
    kinds = {name: (svc.kind, "--replicaof" in svc.argv) for name, svc in stack.services.items()}
    recorder = Recorder(replicas={n for n, (kind, replica) in kinds.items() if kind == "server" and replica},
                        sentinels={n for n, (kind, _) in kinds.items() if kind == "sentinel"})
    monkeypatch.setattr(readiness, "_client", lambda host, port: RecordingClient(recorder, by_port[port]))
    monkeypatch.setattr(readiness, "run_job", lambda stack, name, timeout: recorder.log.append((name, JOB, True)))
    readiness.wait_ready(stack, timeout=10)
    return recorder
