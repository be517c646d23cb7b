"""One measured Sentinel failover: writer, probe and event recorder running around one fault.

The run only records; lib/checker.py gives the verdicts afterwards from what was recorded, so the
same history can be re-read, saved to JSON, or plotted.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis
from redis.sentinel import Sentinel

from lib.fault import Fault, inject_recorded
from lib.ha_client import Address, HAClient
from lib.probe import PlainClientProbe, SentinelProbe
from lib.report import SetupError, console
from lib.sentinel_events import SentinelEvents
from lib.util import format_endpoint
from lib.waits import WaitTimeout, wait_until
from lib.workload import OK, ContinuousWriter, History

WAIT_REPLICAS = 1  # WAIT 1: a write is "confirmed" once one replica has it
# WAIT's timeout ends an op that reached no replica. Right after a promotion the new master has no
# replica yet, so the first writes waited the whole timeout and the recovery we reported came up to
# 100 ms after the write was acknowledged (measured +74 ms vs the probe); 20 ms bounds that error.
WAIT_TIMEOUT_MS = 20
WARMUP_OPS = 200  # acknowledged writes before the fault, so there is something to lose
SETTLE_OPS = 200  # acknowledged writes after recovery, so the client is shown to keep working


class SentinelFailover(Fault):
    """SENTINEL FAILOVER: a promotion without killing anything (works without shell access)."""

    description = "SENTINEL FAILOVER (graceful: the old master is demoted, not killed)"

    def __init__(self, ha: HAClient):
        self.ha = ha

    def inject(self) -> None:
        errors = []
        for address in self.ha.sentinel_addresses:
            client = self.ha.node(address, sentinel=True)
            try:
                client.sentinel_failover(self.ha.master_name)
                return
            except redis.RedisError as exc:
                errors.append(f"{format_endpoint(*address)}: {exc}")
            finally:
                client.close()
        raise SetupError(f"no sentinel accepted SENTINEL FAILOVER {self.ha.master_name}: {'; '.join(errors)}")


@dataclass
class FailoverRun:
    fault: str
    old_master: Address  # as announced by the sentinels
    history: History = field(default_factory=History)  # writer ops + sentinel events
    probe: History = field(default_factory=History)
    plain: History | None = None  # a redis-py Sentinel client with default settings (None: not run)
    fault_at: float = 0.0
    recovered_at: float | None = None
    new_master: Address | None = None
    timeout_reason: str | None = None
    views_after: dict[str, str] = field(default_factory=dict)

    def offset(self, at: float) -> float:
        """Seconds from the fault (negative: before it)."""
        return at - self.fault_at


def wait_replicas_synced(ha: HAClient, timeout: float) -> list[Address]:
    """Every replica of the master has master_link_status:up: one still in its first sync never
    gets promoted (see docs/ha.md), so injecting a fault before this would measure nothing useful."""
    def synced() -> tuple[bool, str]:
        replicas = ha.sentinel.discover_slaves(ha.master_name)
        if not replicas:
            return False, "the sentinels know no healthy replica"
        states = []
        for address in replicas:
            client = ha.node(address)
            try:
                link = client.info("replication").get("master_link_status")
                states.append(f"{format_endpoint(*address)} link={link}")
            finally:
                client.close()
        return all(s.endswith("link=up") for s in states), "; ".join(states)

    wait_until(synced, timeout=timeout, what="every replica's master_link_status:up before the fault")
    return ha.sentinel.discover_slaves(ha.master_name)


def sentinels_agree_on_new_master(ha: HAClient, old: Address) -> tuple[bool, str]:
    views = ha.sentinel_views()
    values = set(views.values())
    text = "; ".join(f"{k} says {v}" for k, v in views.items())
    if len(values) != 1:
        return False, text
    (value,) = values
    return not value.startswith(("error", "unknown")) and value != format_endpoint(*old), text


def run_failover(ha: HAClient, fault: Fault, namespace: str, *, recovery_timeout: float = 60.0,
                 require_new_master: bool = True, history: History | None = None) -> FailoverRun:
    """Write continuously, inject the fault, wait for the client and the sentinels to recover.

    Pass history to watch the run while it happens (the live view of a manual fault does).
    """
    run = FailoverRun(fault.description, ha.announced_master(), history if history is not None else History())
    ha.master()  # connect, and start following +switch-master

    def write(key: str, value: str) -> bool:
        pipe = ha.master().pipeline(transaction=False)
        pipe.set(key, value)
        pipe.execute_command("WAIT", WAIT_REPLICAS, WAIT_TIMEOUT_MS)
        _, acked_by = pipe.execute()
        return int(acked_by) >= WAIT_REPLICAS

    events = SentinelEvents(ha.sentinel_addresses, run.history, ha.sentinel_password)
    probe = SentinelProbe(ha.sentinel_addresses, ha.master_name, ha.remap, f"{namespace}probe",
                          password=ha.password, sentinel_password=ha.sentinel_password)
    writer = ContinuousWriter(write, lambda seq: f"{namespace}w:{seq}", run.history)
    plain = plain_sentinel_client(ha, f"{namespace}plain")
    run.probe = probe.history
    run.plain = plain.history if plain else None
    events.start()
    probe.start()
    if plain:
        plain.start()
    writer.start()
    try:
        wait_until(lambda: (_ok_count(run.history) >= WARMUP_OPS, f"{_ok_count(run.history)} acknowledged"),
                   timeout=30, what=f"{WARMUP_OPS} acknowledged writes before the fault")
        console.print(f"writing ({_ok_count(run.history)} acknowledged so far); fault: {fault.description}")
        run.fault_at = inject_recorded(fault, run.history, "the master stopped answering")
        try:
            _wait_recovered(run, ha, recovery_timeout, require_new_master)
        except WaitTimeout as exc:
            run.timeout_reason = str(exc)
    finally:
        writer.stop()
        probe.stop()
        if plain:
            plain.stop()
        events.stop()
    run.views_after = ha.sentinel_views()
    return run


def plain_sentinel_client(ha: HAClient, key: str) -> PlainClientProbe | None:
    """redis-py's own Sentinel client, default settings, as a user would write it; None when the
    announced addresses need remapping (redis-py's Sentinel client cannot remap them)."""
    announced = ha.announced_master()
    if ha.remap(announced) != announced:
        return None
    sentinel_kwargs = {"password": ha.sentinel_password} if ha.sentinel_password else None
    sentinel = Sentinel(ha.sentinel_addresses, sentinel_kwargs=sentinel_kwargs, password=ha.password)
    master = sentinel.master_for(ha.master_name)

    def close() -> None:
        master.close()
        for client in sentinel.sentinels:
            client.close()

    return PlainClientProbe(lambda seq: master.set(key, seq), close, key=key)


# A restarted old master becomes a replica only after Sentinel has polled its INFO (every 10 s
# outside a failover) and seen it report role:master for 4 publish periods (4 x 2 s): 8-10 s of
# every run was spent on those two timers. On our own local stacks, and only after the failover was
# measured, the rejoin is watched with shorter timers (set at runtime, put back afterwards); set
# before the fault, the 1 s INFO period would make +promoted-slave come up to 0.9 s earlier than
# with the defaults (measured), so the failover figures would not be Sentinel's.
REJOIN_SENTINEL_DEBUG = {"INFO-PERIOD": 1000, "PUBLISH-PERIOD": 500}


@contextlib.contextmanager
def faster_rejoin(ha: HAClient) -> Iterator[None]:
    """SENTINEL DEBUG (Redis 7+/Valkey) on every sentinel for the duration, then the old values."""
    saved: list[tuple[redis.Redis, list]] = []
    for address in ha.sentinel_addresses:
        client = ha.node(address, sentinel=True)
        try:
            current = client.execute_command("SENTINEL", "DEBUG")
            old = {k: current[k] for k in REJOIN_SENTINEL_DEBUG if k in current}
            client.execute_command("SENTINEL", "DEBUG", *_flat(REJOIN_SENTINEL_DEBUG))
            saved.append((client, _flat(old)))
        except redis.RedisError:
            client.close()  # an older sentinel, or unreachable: the rejoin just takes longer
    try:
        yield
    finally:
        for client, old in saved:
            with contextlib.suppress(redis.RedisError):
                client.execute_command("SENTINEL", "DEBUG", *old)
            client.close()


def _flat(settings: dict) -> list:
    return [item for pair in settings.items() for item in pair]


def _wait_recovered(run: FailoverRun, ha: HAClient, timeout: float, require_new_master: bool) -> None:
    def client_and_sentinels() -> tuple[bool, str]:
        first_ok = next((op for op in run.history.snapshot() if op.outcome == OK and op.start > run.fault_at),
                        None)
        agreed, views = sentinels_agree_on_new_master(ha, run.old_master) if require_new_master else (True, "")
        return first_ok is not None and agreed, f"client writing again: {first_ok is not None}; {views}"

    wait_until(client_and_sentinels, timeout=timeout,
               what="the client to write again and all sentinels to agree on a new master")
    run.recovered_at = time.monotonic()
    run.history.event("recovered", "client writing, sentinels agree")
    run.new_master = ha.announced_master()
    settle = _ok_count(run.history) + SETTLE_OPS
    wait_until(lambda: (_ok_count(run.history) >= settle and _ok_after(run.probe, run.recovered_at),
                        f"{_ok_count(run.history)} acknowledged"),
               timeout=30, what=f"{SETTLE_OPS} more acknowledged writes after recovery")


def _ok_count(history: History) -> int:
    return sum(1 for op in history.snapshot() if op.outcome == OK)


def _ok_after(history: History, at: float) -> bool:
    return any(op.outcome == OK and op.start > at for op in history.snapshot())
