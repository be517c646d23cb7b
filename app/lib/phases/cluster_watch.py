"""The cluster's own view, polled during a run: replica links, failure flags, the promotion, the demotion."""

from __future__ import annotations

import time

from lib import events
from lib.cluster_client import ClusterClient
from lib.errors import SetupError
from lib.history import History
from lib.topology.cluster_topology import ClusterNode, Shard
from lib.util import format_endpoint
from lib.waits import PollPolicy, WaitTimeout, wait_until

FAST_POLL = PollPolicy(first=0.01, cap=0.02)  # promotion time is measured by this poll


def wait_links_up(client: ClusterClient, shards: list[Shard], timeout: float) -> None:
    """Every replica's link is up: a replica still in its first sync is never promoted."""
    replicas = [r for s in shards for r in s.replicas]

    def links() -> tuple[bool, str]:
        seen = []
        for replica in replicas:
            node = client.node(client.reachable(replica))
            try:
                seen.append(f"{format_endpoint(*replica.announced)} "
                            f"link={node.info('replication').get('master_link_status')}")
            finally:
                node.close()
        return all(s.endswith("link=up") for s in seen), "; ".join(seen)

    wait_until(links, timeout=timeout, what="every replica's master_link_status:up before the fault")


def wait_promoted(victim: Shard, history: History, client: ClusterClient, timeout: float) -> tuple[ClusterNode, float]:
    """Poll the victim's replicas every 10-20 ms: the one that wins the election says so first.

    Records in history when a replica first sees the old primary as fail? (PFAIL, its own opinion)
    and fail (the majority agreed), then the promotion; returns the promoted node and when it was seen.
    """
    old, replicas = victim.primary, victim.replicas
    if not replicas:
        raise WaitTimeout(f"{victim.label} has no replica: nothing can be promoted")
    winner: list[ClusterNode] = []

    def promoted() -> tuple[bool, str]:
        seen = []
        for replica in replicas:
            try:
                view = client.nodes([client.reachable(replica)])
            except SetupError as exc:
                seen.append(f"{format_endpoint(*replica.announced)}: {exc}")
                continue
            me = next(n for n in view if "myself" in n.flags)
            _record_flags(history, view, old)
            seen.append(f"{format_endpoint(*replica.announced)} {'primary' if me.is_primary else 'replica'}")
            if me.is_primary and me.slots:
                winner.append(me)
                return True, "; ".join(seen)
        return False, "; ".join(seen)

    wait_until(promoted, timeout=timeout, policy=FAST_POLL,
               what=f"a replica of {format_endpoint(*old.announced)} to be promoted")
    promoted_at = time.monotonic()
    history.event(events.PROMOTED, f"{format_endpoint(*winner[0].announced)} now serves {victim.label}",
                  at=promoted_at)
    return winner[0], promoted_at


def wait_flagged_fail(node: ClusterNode, witness: ClusterNode, history: History, client: ClusterClient,
                      timeout: float) -> float:
    """Poll the witness's view until it flags node fail (the majority agreed); the pfail/fail events are
    recorded as for a promotion. Returns when fail was seen."""
    address = client.reachable(witness)

    def flagged() -> tuple[bool, str]:
        view = client.nodes([address])
        _record_flags(history, view, node)
        theirs = next((n for n in view if n.node_id == node.node_id), None)
        flags = ",".join(sorted(theirs.flags)) if theirs else "not listed"
        return theirs is not None and "fail" in theirs.flags, f"{format_endpoint(*node.announced)} flags {flags}"

    wait_until(flagged, timeout=timeout, policy=FAST_POLL,
               what=f"{format_endpoint(*witness.announced)} to flag {format_endpoint(*node.announced)} fail")
    return time.monotonic()


def wait_demoted(client: ClusterClient, old: ClusterNode, history: History, timeout: float) -> float:
    """The healed old primary says it is a replica now (its own CLUSTER NODES); recorded as DEMOTED."""
    address = client.reachable(old)

    def demoted() -> tuple[bool, str]:
        try:
            me = next(n for n in client.nodes([address]) if "myself" in n.flags)
        except SetupError as exc:
            return False, str(exc)
        return not me.is_primary, f"{'primary' if me.is_primary else 'replica'} slots={me.slots}"

    wait_until(demoted, timeout=timeout, policy=FAST_POLL,
               what=f"the old primary {format_endpoint(*old.announced)} to turn replica after the heal")
    at = time.monotonic()
    history.event(events.DEMOTED, f"{format_endpoint(*old.announced)} is a replica now", at=at)
    return at


def _record_flags(history: History, view: list[ClusterNode], old: ClusterNode) -> None:
    """The first sighting of each of the old primary's failure flags, as an event."""
    theirs = next((n for n in view if n.node_id == old.node_id), None)
    if theirs is None:
        return
    for flag, name in (("fail?", events.NODE_PFAIL), ("fail", events.NODE_FAIL)):
        if flag in theirs.flags and not history.first_event(name):
            history.event(name, f"{format_endpoint(*old.announced)} flags {','.join(sorted(theirs.flags))}")
