"""CLUSTER FAILOVER as a fault: a replica takes over its shard in agreement with its primary.

Without FORCE it is coordinated already: the primary pauses its clients until the replica has its whole
offset, then the replica takes over, so no acknowledged write should be lost (--fault graceful and
--fault coordinated run the same command; coordinated is judged strictly: any loss is a FAIL).
"""

from __future__ import annotations

import redis

from lib.cluster_client import ClusterClient
from lib.errors import SetupError
from lib.faults.fault import Fault
from lib.topology.cluster_topology import ClusterNode
from lib.util import format_endpoint


class ClusterManualFailover(Fault):
    """CLUSTER FAILOVER on a replica: a promotion without killing anything (graceful, coordinated)."""

    def __init__(self, client: ClusterClient, replica: ClusterNode, *, coordinated: bool = False):
        self.client, self.replica, self.coordinated = client, replica, coordinated

    @property
    def description(self) -> str:
        how = ("coordinated: the primary pauses writes until the replica has its offset" if self.coordinated
               else "graceful")
        return f"CLUSTER FAILOVER on replica {format_endpoint(*self.replica.announced)} ({how})"

    def inject(self) -> None:
        node = self.client.node(self.client.reachable(self.replica))
        try:
            node.execute_command("CLUSTER FAILOVER")
        except redis.RedisError as exc:
            raise SetupError(f"CLUSTER FAILOVER on {format_endpoint(*self.replica.announced)} failed: {exc}") from None
        finally:
            node.close()
