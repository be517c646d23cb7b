"""One measured Sentinel failover: the declared loops and the event recorder running around one fault.

The run only records, into the one history of the run; the checks give the verdicts afterwards from what was
recorded, so the same history can be re-read, saved to JSON, re-judged or plotted. Its view is ha_record.py; what
the run waits for after the fault is ha_recovery.py.
"""

from __future__ import annotations

from collections.abc import Callable

import redis

from lib import events as event_names
from lib.clients.probe import SentinelProbe
from lib.clients.sentinel_events import SentinelEvents
from lib.description import Loop, TestDescription
from lib.faults.fault import Fault, inject_recorded
from lib.ha_client import Address, HAClient
from lib.history import HARNESS, Attempts, History
from lib.phases.client_comparison import ClientComparison
from lib.phases.ha_plain_client import plain_sentinel_client
from lib.phases.ha_record import GAVE_UP, FailoverView, RunPlan
from lib.phases.ha_recovery import after_fault, ok_count
from lib.util import format_endpoint
from lib.waits import WaitTimeout, wait_until
from lib.workload.scheduler import Scheduler
from lib.workload.workload import ContinuousWriter

WAIT_REPLICAS = 1  # WAIT 1: a write is "confirmed" once one replica has it
# WAIT's timeout ends an op that reached no replica. Right after a promotion the new master has no
# replica yet, so the first writes waited the whole timeout and the recovery we reported came up to
# 100 ms after the write was acknowledged (measured +74 ms vs the probe); 20 ms bounds that error.
WAIT_TIMEOUT_MS = 20
WARMUP_OPS = 200  # acknowledged writes before the fault, so there is something to lose
COMPARED_WARMUP_OPS = 50  # acknowledged writes of each compared client library before the fault
PINNED_TIMEOUT_S = 0.5  # the second writer's socket timeout on the old master (a paused server never answers)


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


def measure_failover(test: TestDescription, ha: HAClient, fault: Fault, namespace: str, history: History, *,
                 require_new_master: bool = True, progress: Callable[[str], None] | None = None,
                 plan: RunPlan | None = None, compared: ClientComparison | None = None) -> FailoverView:
    """Write continuously, inject the fault, wait for the client and the sentinels to recover; all into history.

    The loops are the test description's (lib/workload/scheduler.py runs them): the writer, the 5 ms probe, the
    stock redis-py client, a writer kept on the old master when the fault pins one, the compared libraries
    (--client; after our recovery the run waits, up to their own deadline, for each to write again). plan says what
    else the fault asks of the run: a watch for a failover that must not happen, a heal. Returns the live record;
    the checks judge FailoverView.from_history of the same history.
    """
    plan = plan or RunPlan()
    run = FailoverView(fault.description, ha.announced_master(), history, expected_failover=plan.expect_failover,
                      victim=plan.victim, settings=dict(test.config))
    ha.master()  # connect, and start following +switch-master
    events = SentinelEvents(ha.sentinel_addresses, history, ha.sentinel_password)
    clients: list = []

    def writer(loop: Loop) -> ContinuousWriter:
        def write(key: str, value: str, attempts: Attempts) -> bool:
            return ha.call(lambda master: set_and_wait(master, key, value), attempts)
        return ContinuousWriter(write, lambda seq: f"{namespace}w:{seq}", history, with_attempts=True,
                                pause_s=loop.pause_s, process=loop.process)

    def pinned(loop: Loop) -> ContinuousWriter:
        node = ha.node(plan.pin_old_master, timeout=PINNED_TIMEOUT_S)  # type: ignore[arg-type]
        clients.append(node)
        return ContinuousWriter(lambda key, value: set_and_wait(node, key, value), lambda seq: f"{namespace}old:{seq}",
                                history, pause_s=loop.pause_s, process=loop.process)

    loops = Scheduler(test.workload, {
        "writer": writer, "pinned": pinned,
        "probe": lambda loop: SentinelProbe(ha.sentinel_addresses, ha.master_name, ha.remap, f"{namespace}probe",
                                            history, password=ha.password, sentinel_password=ha.sentinel_password,
                                            interval_s=loop.pause_s, process=loop.process),
        "plain": lambda loop: plain_sentinel_client(ha, f"{namespace}plain", history, loop),
        "clients": lambda loop: compared})  # type: ignore[dict-item]
    try:
        events.start()
        loops.start()
        wait_until(lambda: (ok_count(history) >= WARMUP_OPS, f"{ok_count(history)} acknowledged"),
                   timeout=30, what=f"{WARMUP_OPS} acknowledged writes before the fault")
        if compared is not None:
            compared.wait_warm(COMPARED_WARMUP_OPS)
        if progress is not None:
            progress(f"writing ({ok_count(history)} acknowledged so far); fault: {fault.description}")
        run.fault_at = inject_recorded(fault, history, "the master stopped answering")
        try:
            after_fault(run, ha, fault, plan, test.recovery_timeout_s, require_new_master)
        except WaitTimeout as exc:
            run.timeout_reason = str(exc)
            history.observe(HARNESS, GAVE_UP, error=str(exc))
        if compared is not None:
            switch = history.first_event(event_names.SWITCH_MASTER)
            compared.wait_recovered(switch.at if switch is not None and switch.at > run.fault_at else run.fault_at)
    finally:  # stop what started (Ctrl-C may come between two starts)
        try:
            loops.stop(first=[compared] if compared is not None else [])
        finally:
            events.stop()  # closes its sentinel connections, started or not
            for node in clients:
                node.close()
    return run


def set_and_wait(master: redis.Redis, key: str, value: str) -> bool:
    """SET, then WAIT 1 in the same round trip: True when a replica confirmed it."""
    pipe = master.pipeline(transaction=False)
    pipe.set(key, value)
    pipe.execute_command("WAIT", WAIT_REPLICAS, WAIT_TIMEOUT_MS)
    _, acked_by = pipe.execute()
    return int(acked_by) >= WAIT_REPLICAS
