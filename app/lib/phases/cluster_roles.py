"""The old primary back as a replica of the promoted one, and made the primary of its shard again."""

from __future__ import annotations

from lib.cluster_client import ClusterClient
from lib.topology.cluster_topology import ClusterNode
from lib.util import format_endpoint
from lib.waits import wait_until


def put_back_roles(client: ClusterClient, old_primary: ClusterNode, promoted: ClusterNode,
                   timeout: float = 60.0) -> str:
    """Make the old primary the primary of its shard again, as it was before the fault.

    CLUSTER FAILOVER (no FORCE) on the old primary once it replicates the promoted node with its
    link up: the promoted primary pauses its clients until the old one has its whole offset, so
    no acknowledged write is lost by the swap back.
    """
    wait_rejoined(client, old_primary, promoted, timeout)
    address = client.reachable(old_primary)
    with client.node(address, timeout=5.0) as node:
        node.execute_command("CLUSTER", "FAILOVER")

    def primary_again() -> tuple[bool, str]:
        me = next(n for n in client.nodes([address]) if "myself" in n.flags)
        return me.is_primary and bool(me.slots), f"{'primary' if me.is_primary else 'replica'} slots={me.slots}"

    wait_until(primary_again, timeout=timeout, what=f"{format_endpoint(*old_primary.announced)} to be the "
               "primary of its shard again after CLUSTER FAILOVER")
    return wait_rejoined(client, promoted, old_primary, timeout)


def wait_rejoined(client: ClusterClient, old: ClusterNode, new_primary: ClusterNode, timeout: float) -> str:
    """The old primary, running again, is a replica of the new one with its link up."""
    address = client.reachable(old)

    def rejoined() -> tuple[bool, str]:
        me = next(n for n in client.nodes([address]) if "myself" in n.flags)
        node = client.node(address)
        try:
            link = node.info("replication").get("master_link_status")
        finally:
            node.close()
        return (not me.is_primary and me.master_id == new_primary.node_id and link == "up",
                f"{'primary' if me.is_primary else 'replica of ' + me.master_id[:8]} link={link}")

    return wait_until(rejoined, timeout=timeout, what=f"{format_endpoint(*old.announced)} to replicate from "
                      f"{format_endpoint(*new_primary.announced)} with its link up")
