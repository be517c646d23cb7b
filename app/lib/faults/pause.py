"""Pause as a fault: SIGSTOP (docker pause) the master, longer than failure detection, then resume it.

The paused server keeps its sockets and its role. When it resumes it still believes it is the master
until the sentinels (or the cluster) demote it, so a client that stayed with it can have writes
acknowledged that the demotion then discards: the run counts them.
"""

from __future__ import annotations

from dataclasses import dataclass

from lib.faults.fault import Fault
from lib.faults.nodes import NodeControl


@dataclass
class Pause(Fault):
    node: NodeControl
    how: str = "SIGSTOP"  # "docker pause" on compose
    can_restore = True
    heals_in_run = True

    @property
    def description(self) -> str:
        resume = "docker unpause" if self.how == "docker pause" else "SIGCONT"
        return f"{self.how} {self.node.name} (resumed with {resume} after the failover)"

    def inject(self) -> None:
        self.node.pause()

    def restore(self, timeout: float) -> bool:
        self.node.resume()
        return True
