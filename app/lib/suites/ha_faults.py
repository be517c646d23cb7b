"""The fault --fault asks for in the HA suite, built from what the suite resolved (lib/faults/registry.py) and
checked before anything is touched: a SetupError names what cannot be done here (and what works anywhere)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis

from lib.description import TestDescription
from lib.errors import SetupError
from lib.faults import registry
from lib.faults.fault import (
    NO_FAILOVER,
    NO_FAILOVER_UNTIL_HEALED,
    PROMOTION,
    Fault,
    FaultContext,
    Node,
    WaitNotice,
    make_fault,
)
from lib.ha_client import Address, HAClient
from lib.phases.ha_record import RunPlan
from lib.suites.cli import fault_options
from lib.util import format_endpoint

# A watch for a failover that must not happen lasts twice the detection time plus this: from +odown to
# +switch-master took 1-2 s here, so a failover that was going to happen would have happened within it.
FAILOVER_ALLOWANCE_S = 3.0


def build_fault(test: TestDescription, ha: HAClient, announced: Address, reachable: Address,
                history_view: Callable[[float], Any], notify: Callable[[WaitNotice], None] | None = None
                ) -> tuple[Fault | None, RunPlan]:
    """The fault --fault asks for (or --fault-file's), and what the run must do around it; nothing touched yet."""
    fault_class = registry.chosen(test.fault, test.fault_file)
    if fault_class is None:
        return None, RunPlan()
    replicas = [Node(a, ha.remap(a)) for a in announced_replicas(ha)]
    ctx = FaultContext("sentinel", "ha", f"the master {format_endpoint(*announced)}", Node(announced, reachable),
                       replicas,
                       sentinels=[Node(a, a) for a in ha.sentinel_addresses], primaries=[Node(announced, reachable)],
                       master_name=ha.master_name, password=ha.password, options=fault_options(test),
                       connect=ha.node, sentinel_master=lambda: sentinel_master(ha), notify=notify,
                       live_view=history_view)
    fault = make_fault(fault_class, ctx)
    return fault, run_plan(fault, ha, reachable)


def run_plan(fault: Fault, ha: HAClient, reachable: Address) -> RunPlan:
    """What the run does around the fault, from what the fault says it should cause."""
    pin = reachable if fault.pins_old_primary else None
    if fault.expects == PROMOTION:
        return RunPlan(pin_old_master=pin)
    watch = watch_seconds(sentinel_master(ha))
    why = fault.why_no_failover or "the fault should cause no failover"
    if fault.expects == NO_FAILOVER_UNTIL_HEALED:
        return RunPlan(watch_s=watch, heal_after_watch=lambda: fault.heal_watched(30), why_no_failover=why,
                       pin_old_master=pin)
    return RunPlan(expect_failover=fault.expects != NO_FAILOVER, watch_s=watch, why_no_failover=why,
                   victim=fault.stops.announced if fault.stops is not None else None, pin_old_master=pin)


def sentinel_master(ha: HAClient) -> dict:
    """SENTINEL MASTER from the first sentinel that answers: quorum, down-after, how many sentinels it knows."""
    errors = []
    for address in ha.sentinel_addresses:
        client = ha.node(address, sentinel=True)
        try:
            return client.sentinel_master(ha.master_name)
        except redis.RedisError as exc:
            errors.append(f"{format_endpoint(*address)}: {exc}")
        finally:
            client.close()
    raise SetupError(f"no sentinel answered SENTINEL MASTER {ha.master_name}: {'; '.join(errors)}")


def watch_seconds(state: dict) -> float:
    """Longer than a normal failover would take: twice the detection time plus the failover itself."""
    return 2 * int(state["down-after-milliseconds"]) / 1000 + FAILOVER_ALLOWANCE_S


def announced_replicas(ha: HAClient) -> list[Address]:
    """The master's replicas as the sentinels announce them (the names a container is found by)."""
    client = ha.node(ha.sentinel_addresses[0], sentinel=True)
    try:
        replicas = client.sentinel_slaves(ha.master_name)
    finally:
        client.close()
    return sorted((r["ip"], int(r["port"])) for r in replicas if not r.get("is_sdown"))
