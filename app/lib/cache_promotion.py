"""Watching one shard fail over: its replicas' own view flags the primary failed, then one is promoted.

Polled every 10-20 ms (lib.cluster_failover.FAST_POLL) on the replicas themselves: the replica that
wins the election knows it first, and its CLUSTER NODES shows when it marked the old primary "fail".
Both moments go into the run's History as events, for the report and a later timeline.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from lib.cluster_client import ClusterClient
from lib.cluster_failover import FAST_POLL
from lib.report import SetupError
from lib.util import format_endpoint
from lib.waits import WaitTimeout, wait_until

if TYPE_CHECKING:  # cache_failover imports this module
    from lib.cache_failover import CacheFailoverRun


def watch_failover(run: CacheFailoverRun, client: ClusterClient, timeout: float) -> float:
    """Wait for a replica of run.victim to be promoted (sets run.promoted); returns when it was seen."""
    old, replicas = run.victim.primary, run.victim.replicas
    if not replicas:
        raise WaitTimeout(f"{run.victim.label} has no replica: nothing can be promoted")

    def promoted() -> tuple[bool, str]:
        seen = []
        for replica in replicas:
            try:
                view = client.nodes([client.reachable(replica)])
            except SetupError as exc:
                seen.append(f"{format_endpoint(*replica.announced)}: {exc}")
                continue
            me = next(n for n in view if "myself" in n.flags)
            was = next((n for n in view if n.node_id == old.node_id), None)
            if was is not None and "fail" in was.flags and not run.history.first_event("primary flagged fail"):
                run.history.event("primary flagged fail", f"{format_endpoint(*replica.announced)} sees "
                                  f"{format_endpoint(*old.announced)} as {','.join(sorted(was.flags))}")
            seen.append(f"{format_endpoint(*replica.announced)} {'primary' if me.is_primary else 'replica'}")
            if me.is_primary and me.slots:
                run.promoted = me
                return True, "; ".join(seen)
        return False, "; ".join(seen)

    wait_until(promoted, timeout=timeout, policy=FAST_POLL,
               what=f"a replica of {format_endpoint(*old.announced)} to be promoted")
    at = time.monotonic()
    run.history.event("replica promoted", f"{format_endpoint(*run.promoted.announced)} now serves "
                      f"{run.victim.label}", at=at)
    return at
