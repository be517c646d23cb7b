"""SIGTERM as a fault (docker stop on compose): the server's own shutdown path, compared with SIGKILL.

With `shutdown-on-sigterm failover` a cluster primary hands its slots to a synced replica before it exits.
A Sentinel-managed master only waits for its replicas to catch up (SHUTDOWN FAILOVER is cluster-only in
Valkey 9.0/9.1), then the sentinels fail over as after a kill: the run measures both.
"""

from __future__ import annotations

from dataclasses import dataclass

from lib.faults.fault import Fault
from lib.faults.nodes import NodeControl


@dataclass
class Terminate(Fault):
    node: NodeControl
    how: str = "SIGTERM"  # "docker stop" on compose
    can_restore = True

    @property
    def description(self) -> str:
        return f"{self.how} {self.node.name} (shutdown-on-sigterm failover)"

    def inject(self) -> None:
        self.node.terminate()

    def restore(self, timeout: float) -> bool:
        return self.node.start(timeout)
