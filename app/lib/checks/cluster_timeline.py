"""Every shard's writes through a fault: the timeline's data, and how long a shard that lost nothing may pause."""

from __future__ import annotations

from lib import events
from lib.checks.timeline import Timeline, build_timeline, client_rows
from lib.phases.cluster_record import ClusterFailoverView

OTHER_SHARDS_MAX_GAP_MS = 1000  # "kept serving": longest pause of writes to a shard that lost nothing


def failover_timeline(run: ClusterFailoverView) -> Timeline:
    """Every shard's writes in the buckets; the outage measured on the shard that lost its primary."""
    victim_ops = run.ops(run.victim) if run.victim is not None else None
    extra = []
    if run.plain is not None:
        extra = [row for row in client_rows(run.plain.snapshot(), run.fault_at, "plain redis-py")
                 if row.name.endswith(events.RECOVERED)]
    if run.pinned is not None:  # what the old primary itself told a client that stayed with it
        extra += [row for row in client_rows(run.pinned_ops(), run.fault_at, "pinned writer")
                  if not row.name.endswith(events.RECOVERED)]
    who = f"client ({run.victim.label})" if run.victim is not None else "client"
    return build_timeline(run.history, run.fault_at, ops=victim_ops, who=who, extra_events=extra)
