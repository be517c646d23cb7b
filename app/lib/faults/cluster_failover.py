"""CLUSTER FAILOVER as a fault: a replica takes over its shard in agreement with its primary (--fault graceful)."""

from __future__ import annotations

import redis

from lib.cluster_client import ClusterClient
from lib.errors import SetupError
from lib.faults.fault import Fault
from lib.topology.cluster_topology import ClusterNode
from lib.util import format_endpoint


class ClusterManualFailover(Fault):
    """CLUSTER FAILOVER on a replica: a promotion without killing anything (graceful)."""

    def __init__(self, client: ClusterClient, replica: ClusterNode):
        self.client, self.replica = client, replica

    @property
    def description(self) -> str:
        return f"CLUSTER FAILOVER on replica {format_endpoint(*self.replica.announced)} (graceful)"

    def inject(self) -> None:
        node = self.client.node(self.client.reachable(self.replica))
        try:
            node.execute_command("CLUSTER FAILOVER")
        except redis.RedisError as exc:
            raise SetupError(f"CLUSTER FAILOVER on {format_endpoint(*self.replica.announced)} failed: {exc}") from None
        finally:
            node.close()
