"""The names of the events a run records in its history: one spelling for producers and consumers.

Faults, runs and observers write these into History; checks look them up, the timeline lists them,
the plot marks them and the saved JSON carries them. A name changed here changes everywhere.
"""

from __future__ import annotations

# Written by every fault (lib/faults/fault.py: inject_recorded).
FAULT = "fault"  # the moment the fault was injected
FAULT_SEEN = "fault seen"  # a fault done by hand: when the harness first saw it take effect
HEALED = "healed"  # the run healed the fault itself (a pause resumed, a partition healed)
WATCH_ENDED = "watch ended"  # quorum loss, replica kill: the window watched for a failover that must not happen

# Written by lib/phases/final_read.py: the state the lost-write verdict compares every write with.
FINAL_READ = "final read"

# Announced by the sentinels (lib/clients/sentinel_events.py records their pub/sub channels as they are).
SDOWN = "+sdown"
ODOWN = "+odown"
TRY_FAILOVER = "+try-failover"
PROMOTED_SLAVE = "+promoted-slave"
SWITCH_MASTER = "+switch-master"
SENTINEL_EVENTS = ("+sdown", "-sdown", "+odown", TRY_FAILOVER, "+elected-leader", "+selected-slave",
                   PROMOTED_SLAVE, SWITCH_MASTER, "+convert-to-slave", "+slave", "+reboot")

# Seen in the cluster's own view (lib/phases/cluster_watch.py polls CLUSTER NODES).
NODE_PFAIL = "node flagged pfail"
NODE_FAIL = "node flagged fail"
PROMOTED = "promoted"
DEMOTED = "old primary demoted"  # a healed old primary (resumed, reconnected) turned replica

# The client's side (lib/phases/*): when writes succeed again.
RECOVERED = "recovered"
CLIENT_RECOVERED = "client recovered"  # the cache store, per shard
HITS_RETURNED = "hits returned"  # the HTTP cache serves hits again on the affected shard


def client_row(who: str, what: str) -> str:
    """A timeline row derived from a client's operations: 'client: recovered', '5 ms probe: last ok'."""
    return f"{who}: {what}"


CLIENT_LAST_OK, CLIENT_FIRST_ERROR, CLIENT_ROW_RECOVERED = "last ok", "first error", RECOVERED

# Events worth a vertical line in a plot; the rest (+slave, +reboot, ...) would only clutter it.
MARKED = (FAULT, FAULT_SEEN, HEALED, SDOWN, ODOWN, SWITCH_MASTER, NODE_PFAIL, NODE_FAIL, PROMOTED, RECOVERED,
          CLIENT_RECOVERED, client_row("client", RECOVERED), HITS_RETURNED)
