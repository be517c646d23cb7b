"""One measured Sentinel failover: writer, probe and event recorder running around one fault.

The run only records; lib/checks/checker.py gives the verdicts afterwards from what was recorded, so the
same history can be re-read, saved to JSON, or plotted.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.sentinel import Sentinel

from lib import events
from lib.clients.probe import PlainClientProbe, SentinelProbe
from lib.clients.sentinel_events import SentinelEvents
from lib.errors import SetupError
from lib.faults.fault import Fault, inject_recorded, restore_fault
from lib.ha_client import Address, HAClient
from lib.history import OK, Attempts, History, Op
from lib.util import format_endpoint
from lib.waits import WaitTimeout, wait_until
from lib.workload.workload import ContinuousWriter

WAIT_REPLICAS = 1  # WAIT 1: a write is "confirmed" once one replica has it
# WAIT's timeout ends an op that reached no replica. Right after a promotion the new master has no
# replica yet, so the first writes waited the whole timeout and the recovery we reported came up to
# 100 ms after the write was acknowledged (measured +74 ms vs the probe); 20 ms bounds that error.
WAIT_TIMEOUT_MS = 20
WARMUP_OPS = 200  # acknowledged writes before the fault, so there is something to lose
SETTLE_OPS = 200  # acknowledged writes after recovery, so the client is shown to keep working
HEAL_TIMEOUT_S = 30.0  # a pause resumed, a cut healed, sentinels started again
# A resumed (or reconnected) old master is demoted once a sentinel has seen it claim the master role for
# 4 publish periods (8 s) on an INFO reply (every 10 s outside a failover): up to ~20 s with the defaults.
DEMOTION_TIMEOUT_S = 45.0
PINNED_TIMEOUT_S = 0.5  # the second writer's socket timeout on the old master (a paused server never answers)


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
    expected_failover: bool = True  # False: the master must stay where it is (replica kill)
    watch: Watch | None = None  # the window watched for a failover that must not happen
    healed_at: float | None = None  # the run healed the fault itself (a pause resumed, sentinels back)
    pinned: History | None = None  # a second writer's, pinned to the old master's address throughout
    old_master_demoted_at: float | None = None  # when the pinned-to old master reported role:slave
    victim: Address | None = None  # the node the fault stopped when it is not the master (replica kill)
    settings: dict[str, str] = field(default_factory=dict)  # CONFIG SET on the servers for the run
    extra: dict[str, Any] = field(default_factory=dict)  # what the fault adds to the metrics

    def offset(self, at: float) -> float:
        """Seconds from the fault (negative: before it)."""
        return at - self.fault_at


@dataclass
class Watch:
    """What a window watched for a failover that must not happen (quorum loss, replica kill) saw."""

    seconds: float
    why: str  # why no failover may happen: "quorum unreachable"
    ended_at: float
    switch_at: float | None  # +switch-master inside the window: a failover did happen
    events: dict[str, int]  # sentinel events seen in the window, by name
    views: dict[str, str]  # each sentinel's master at its end


@dataclass(frozen=True)
class RunPlan:
    """What the run expects of its fault and does around it; the defaults are a kill's: wait for a failover."""

    expect_failover: bool = True  # False (replica kill): the master keeps serving, no new one is waited for
    watch_s: float = 0.0  # > 0: first watch this long for a failover that must not happen
    why_no_failover: str = ""  # what the watch expects, in words: "quorum unreachable"
    heal_after_watch: Callable[[], str] | None = None  # quorum loss: start the sentinels again, say how it went
    pin_old_master: Address | None = None  # reachable address: a second writer stays on the old master
    victim: Address | None = None  # announced address of the node stopped, when it is not the master


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
                 require_new_master: bool = True, history: History | None = None,
                 progress: Callable[[str], None] | None = None, plan: RunPlan | None = None,
                 settings: dict[str, str] | None = None) -> FailoverRun:
    """Write continuously, inject the fault, wait for the client and the sentinels to recover.

    Pass history to watch the run while it happens (the live view of a manual fault does), and
    progress to be told (one line) when the fault is about to be injected. plan says what else the
    fault asks of the run: a watch for a failover that must not happen, a heal, a writer on the old master.
    """
    plan = plan or RunPlan()
    run = FailoverRun(fault.description, ha.announced_master(), history if history is not None else History(),
                      expected_failover=plan.expect_failover, victim=plan.victim, settings=dict(settings or {}))
    ha.master()  # connect, and start following +switch-master

    def write(key: str, value: str, attempts: Attempts) -> bool:
        return ha.call(lambda master: set_and_wait(master, key, value), attempts)

    events = SentinelEvents(ha.sentinel_addresses, run.history, ha.sentinel_password)
    probe = SentinelProbe(ha.sentinel_addresses, ha.master_name, ha.remap, f"{namespace}probe",
                          password=ha.password, sentinel_password=ha.sentinel_password)
    writer = ContinuousWriter(write, lambda seq: f"{namespace}w:{seq}", run.history, with_attempts=True)
    plain = plain_sentinel_client(ha, f"{namespace}plain")
    pinned, pinned_client = None, None
    if plan.pin_old_master is not None:
        run.pinned = History()
        pinned_client = ha.node(plan.pin_old_master, timeout=PINNED_TIMEOUT_S)
        pinned = pinned_writer(pinned_client, f"{namespace}old:", run.pinned)
    run.probe = probe.history
    run.plain = plain.history
    try:
        events.start()
        probe.start()
        plain.start()
        writer.start()
        if pinned is not None:
            pinned.start()
        wait_until(lambda: (_ok_count(run.history) >= WARMUP_OPS, f"{_ok_count(run.history)} acknowledged"),
                   timeout=30, what=f"{WARMUP_OPS} acknowledged writes before the fault")
        if progress is not None:
            progress(f"writing ({_ok_count(run.history)} acknowledged so far); fault: {fault.description}")
        run.fault_at = inject_recorded(fault, run.history, "the master stopped answering")
        try:
            _after_fault(run, ha, fault, plan, recovery_timeout, require_new_master)
        except WaitTimeout as exc:
            run.timeout_reason = str(exc)
    finally:  # stop what started (Ctrl-C may come between two starts)
        for worker in (writer, probe, plain, pinned):
            if worker is not None and worker.ident is not None:
                worker.stop()
        events.stop()  # closes its sentinel connections, started or not
        if pinned_client is not None:
            pinned_client.close()
    run.views_after = ha.sentinel_views()
    return run


def set_and_wait(master: redis.Redis, key: str, value: str) -> bool:
    """SET, then WAIT 1 in the same round trip: True when a replica confirmed it."""
    pipe = master.pipeline(transaction=False)
    pipe.set(key, value)
    pipe.execute_command("WAIT", WAIT_REPLICAS, WAIT_TIMEOUT_MS)
    _, acked_by = pipe.execute()
    return int(acked_by) >= WAIT_REPLICAS


def pinned_writer(client: redis.Redis, prefix: str, history: History) -> ContinuousWriter:
    """A writer that never follows a failover: a plain client on the old master's address, as a client on
    its side of a pause or a cut would be. What it had acknowledged there is read back like the rest."""
    return ContinuousWriter(lambda key, value: set_and_wait(client, key, value), lambda seq: f"{prefix}{seq}",
                            history)


def _after_fault(run: FailoverRun, ha: HAClient, fault: Fault, plan: RunPlan, recovery_timeout: float,
                 require_new_master: bool) -> None:
    """Everything between the fault and the end of the measurement, as the plan says."""
    if plan.watch_s > 0:
        _watch_for_failover(run, ha, plan.watch_s, plan.why_no_failover)
        if plan.heal_after_watch is not None:
            _heal(run, plan.heal_after_watch)
    elif fault.heals_in_run:
        try:  # heal only once the failover is seen: a pause must outlast failure detection
            wait_until(lambda: (_switch_after_fault(run) is not None, "no +switch-master yet"),
                       timeout=recovery_timeout, what="+switch-master before healing the fault")
        finally:  # healed even when no failover came (or on Ctrl-C): the fault must not outlive the run
            _heal(run, lambda: "healed after +switch-master" if restore_fault(fault, HEAL_TIMEOUT_S)
                  else "could not heal the fault")
    if not plan.expect_failover:
        _wait_kept_serving(run, ha)
        return
    _wait_recovered(run, ha, recovery_timeout, require_new_master)
    if plan.pin_old_master is not None:
        _wait_demoted(run, ha, plan.pin_old_master)


def _heal(run: FailoverRun, heal: Callable[[], str]) -> None:
    detail = heal()
    run.healed_at = time.monotonic()
    run.history.event(events.HEALED, detail, at=run.healed_at)


def _switch_after_fault(run: FailoverRun):
    return next((e for e in list(run.history.events) if e.name == events.SWITCH_MASTER and e.at >= run.fault_at),
                None)


def _watch_for_failover(run: FailoverRun, ha: HAClient, seconds: float, why: str) -> None:
    """Watch the whole window (a deadline, not a sleep), ending early only if a failover happens after all."""
    end = run.fault_at + seconds

    def watched() -> tuple[bool, str]:
        if switch := _switch_after_fault(run):
            return True, f"+switch-master at {run.offset(switch.at):+.2f}s"
        left = end - time.monotonic()
        return left <= 0, f"{max(left, 0.0):.1f}s of the watch left, no +switch-master"

    wait_until(watched, timeout=seconds + 5, what=f"the end of the {seconds:.0f}s watch for a failover")
    ended = time.monotonic()
    switch = _switch_after_fault(run)
    seen = Counter(e.name for e in list(run.history.events) if run.fault_at <= e.at <= ended)
    run.watch = Watch(seconds, why, ended, switch.at if switch else None, dict(seen), ha.sentinel_views())
    run.history.event(events.WATCH_ENDED, f"{seconds:.1f}s watched, {'a' if switch else 'no'} failover", at=ended)


def _wait_kept_serving(run: FailoverRun, ha: HAClient) -> None:
    """No failover expected: the measurement ends once a write after the fault is acknowledged."""
    wait_until(lambda: (_ok_after(run.history, run.fault_at), "no write acknowledged since the fault"),
               timeout=30, what="a write acknowledged after the fault")
    run.recovered_at = time.monotonic()
    run.new_master = ha.announced_master()


def _wait_demoted(run: FailoverRun, ha: HAClient, address: Address) -> None:
    """Keep the pinned writer on the old master until it is a replica: all it acknowledged meanwhile counts."""
    def demoted() -> tuple[bool, str]:
        node = ha.node(address)
        try:
            role = node.info("replication").get("role")
        finally:
            node.close()
        return role == "slave", f"{format_endpoint(*address)} has role {role}"

    try:
        wait_until(demoted, timeout=DEMOTION_TIMEOUT_S, what=f"the old master {format_endpoint(*address)} to be "
                   "demoted")
    except WaitTimeout:
        return  # still a master: replica_sync judges the rejoin; old_master_demoted_s stays null
    run.old_master_demoted_at = time.monotonic()


class RemappedSentinel(Sentinel):
    """redis-py's stock Sentinel client, except that the addresses it discovers go through a remap.

    The yardstick must be what a user gets from redis-py, yet on Docker Compose the sentinels
    announce names (valkey-master:6379) that only resolve inside the compose network. So the only
    difference from stock: the result of the stock discover_master/discover_slaves is translated
    (valkey-master:6379 -> 127.0.0.1:6379). Discovery itself (the first healthy SENTINEL MASTERS
    answer), the connection pool, its reconnect after errors and READONLY, and the retries are
    redis-py's defaults. (Stock force_master_ip maps every master to one IP and leaves replicas alone.)
    """

    def __init__(self, sentinels: list[Address], remap: Callable[[Address], Address], **kwargs):
        super().__init__(sentinels, **kwargs)
        self.remap = remap

    def discover_master(self, service_name: str) -> Address:
        return self.remap(super().discover_master(service_name))

    def discover_slaves(self, service_name: str) -> list[Address]:
        return [self.remap(address) for address in super().discover_slaves(service_name)]


def plain_sentinel_client(ha: HAClient, key: str) -> PlainClientProbe:
    """redis-py's own Sentinel client, default settings, as a user would write it (see RemappedSentinel)."""
    sentinel_kwargs = {"password": ha.sentinel_password} if ha.sentinel_password else None
    sentinel = RemappedSentinel(ha.sentinel_addresses, ha.remap, sentinel_kwargs=sentinel_kwargs,
                                password=ha.password)
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
    run.history.event(events.RECOVERED, "client writing, sentinels agree")
    run.new_master = ha.announced_master()
    settle = _ok_count(run.history) + SETTLE_OPS
    wait_until(lambda: (_ok_count(run.history) >= settle and _ok_after(run.probe, run.recovered_at),
                        f"{_ok_count(run.history)} acknowledged"),
               timeout=30, what=f"{SETTLE_OPS} more acknowledged writes after recovery")


def _ok_count(history: History) -> int:
    return sum(1 for op in history.snapshot() if op.outcome == OK)


def _ok_after(history: History, at: float) -> bool:
    return any(op.outcome == OK and op.start > at for op in history.snapshot())


def acked_after(ops: list[Op], at: float) -> list[Op]:
    """The writes acknowledged after `at` (an op blocked across it counts: its reply came after)."""
    return [op for op in ops if op.outcome == OK and op.end >= at]


# ---- putting the roles back (servers the harness did not start) -------------------------------

NEVER_PROMOTED = 0  # replica-priority 0: Sentinel never picks this replica


@dataclass
class PutBack:
    """What put_back_master did: whether the original master is master again, and how."""

    done: bool
    detail: str
    steps: list[str] = field(default_factory=list)


def put_back_master(ha: HAClient, original: Address, timeout: float = 90.0) -> PutBack:
    """Make `original` (an announced address) the master again with one more SENTINEL FAILOVER.

    A graceful failover leaves the roles swapped; on a deployment the harness did not start they
    must be as before. SENTINEL FAILOVER picks the replica by replica-priority, then offset, so the
    other replicas get replica-priority 0 (never promoted) until the switch, then their old value.
    Only once `original` is a synced replica (link up) whose new priority-0 peers the sentinel has
    seen (it polls INFO every 10 s), else Sentinel would promote another one or none.
    """
    deadline = time.monotonic() + timeout
    steps: list[str] = []

    def left() -> float:
        return max(1.0, deadline - time.monotonic())

    current = ha.announced_master()
    if current == original:
        return PutBack(True, f"{format_endpoint(*original)} is the master already", steps)
    saved: dict[Address, str] = {}
    not_restored: list[str] = []
    try:
        steps.append(wait_synced_replica(ha, original, current, left()))
        sentinel = ha.sentinel_addresses[0]
        others = [a for a in _sentinel_replicas(ha, sentinel) if a != original]
        try:
            _set_priorities(ha, others, NEVER_PROMOTED, saved)
            steps.append(wait_until(lambda: _sentinel_would_pick(ha, sentinel, original, others), timeout=left(),
                                    what=f"sentinel {format_endpoint(*sentinel)} to see {format_endpoint(*original)} "
                                         "as the only replica it may promote"))
            _sentinel_failover(ha, sentinel)
            steps.append(wait_until(lambda: _master_everywhere(ha, original), timeout=left(),
                                    what=f"all sentinels to name {format_endpoint(*original)} master again"))
        finally:
            not_restored = _restore_priorities(ha, saved)
        steps.append(wait_until(lambda: _replicas_back(ha, original, [current, *others]), timeout=left(),
                                what=f"{format_endpoint(*original)}'s replicas to be online again"))
    except (WaitTimeout, SetupError, redis.RedisError) as exc:
        return PutBack(False, f"could not make {format_endpoint(*original)} master again: {exc}; "
                       f"{_priority_note(saved, not_restored)}. By hand: once {format_endpoint(*original)} "
                       f"replicates with its link up, SENTINEL FAILOVER {ha.master_name} (with the other replicas' "
                       "replica-priority at 0 meanwhile)", steps)
    if not_restored:
        return PutBack(False, f"{format_endpoint(*original)} is the master again, but "
                       f"{_priority_note(saved, not_restored)}", steps)
    return PutBack(True, f"{format_endpoint(*original)} is the master again (SENTINEL FAILOVER once it had synced; "
                   f"{_priority_note(saved, not_restored)})", steps)


def _priority_note(saved: dict[Address, str], not_restored: list[str]) -> str:
    if not saved:
        return "no replica-priority was changed"
    if not_restored:
        return f"replica-priority is still 0 on {'; '.join(not_restored)}"
    return (f"replica-priority of {', '.join(format_endpoint(*a) for a in saved)} was 0 meanwhile "
            "and is back")


def wait_synced_replica(ha: HAClient, replica: Address, master: Address, timeout: float) -> str:
    """replica replicates from master with its link up and no sync under way; returns what was seen."""
    def synced() -> tuple[bool, str]:
        node = ha.node(ha.remap(replica))
        try:
            info = node.info("replication")
        finally:
            node.close()
        seen = (f"role={info.get('role')} master={info.get('master_host')}:{info.get('master_port')} "
                f"link={info.get('master_link_status')} sync_in_progress={info.get('master_sync_in_progress')}")
        return (info.get("role") == "slave" and int(info.get("master_port", 0)) == master[1]
                and info.get("master_link_status") == "up" and not int(info.get("master_sync_in_progress", 0))), seen

    return wait_until(synced, timeout=timeout, what=f"{format_endpoint(*replica)} to be a synced replica of "
                      f"{format_endpoint(*master)}")


def _sentinel_replicas(ha: HAClient, sentinel: Address) -> list[Address]:
    client = ha.node(sentinel, sentinel=True)
    try:
        return [(r["ip"], int(r["port"])) for r in client.sentinel_slaves(ha.master_name)]
    finally:
        client.close()


def _set_priorities(ha: HAClient, replicas: list[Address], priority: int, saved: dict[Address, str]) -> None:
    """CONFIG SET replica-priority on each replica, noting each old value in saved as soon as it is changed."""
    for address in replicas:
        node = ha.node(ha.remap(address))
        try:
            value = node.config_get("replica-priority")["replica-priority"]
            node.config_set("replica-priority", priority)
            saved[address] = value
        finally:
            node.close()


def _restore_priorities(ha: HAClient, saved: dict[Address, str]) -> list[str]:
    """Put the saved replica-priority values back; returns the replicas where that failed, and why."""
    failed = []
    for address, value in saved.items():
        node = ha.node(ha.remap(address))
        try:
            node.config_set("replica-priority", value)
        except redis.RedisError as exc:
            failed.append(f"{format_endpoint(*address)} (set it back to {value}: {exc})")
        finally:
            node.close()
    return failed


def _sentinel_would_pick(ha: HAClient, sentinel: Address, original: Address,
                         others: list[Address]) -> tuple[bool, str]:
    client = ha.node(sentinel, sentinel=True)
    try:
        replicas = {(r["ip"], int(r["port"])): r for r in client.sentinel_slaves(ha.master_name)}
    finally:
        client.close()
    candidate = replicas.get(original, {})
    seen = "; ".join(f"{format_endpoint(*a)} priority={r.get('slave-priority')} link={r.get('master-link-status')} "
                     f"flags={r.get('flags')}" for a, r in replicas.items())
    ready = (bool(candidate) and candidate.get("master-link-status") == "ok" and not candidate.get("is_sdown")
             and not candidate.get("is_disconnected") and int(candidate.get("slave-priority", 0)) > 0
             and all(int(replicas.get(a, {}).get("slave-priority", NEVER_PROMOTED)) == NEVER_PROMOTED
                     for a in others))
    return ready, seen


def _sentinel_failover(ha: HAClient, sentinel: Address) -> None:
    client = ha.node(sentinel, sentinel=True)
    try:
        client.sentinel_failover(ha.master_name)
    finally:
        client.close()


def _master_everywhere(ha: HAClient, original: Address) -> tuple[bool, str]:
    views = ha.sentinel_views()
    node = ha.node(ha.remap(original))
    try:
        role = node.info("replication").get("role")
    finally:
        node.close()
    agreed = set(views.values()) == {format_endpoint(*original)}
    return agreed and role == "master", f"sentinels say {views}; {format_endpoint(*original)} has role {role}"


def _replicas_back(ha: HAClient, master: Address, replicas: list[Address]) -> tuple[bool, str]:
    node = ha.node(ha.remap(master))
    try:
        info = node.info("replication")
    finally:
        node.close()
    online = {int(v.get("port", 0)) for k, v in info.items()
              if k.startswith("slave") and isinstance(v, dict) and v.get("state") == "online"}
    return all(port in online for _, port in replicas), f"online replica ports {sorted(online)}"
