"""SIGTERM the primary (`docker stop` on compose): the server's own shutdown path, compared with SIGKILL.

With `shutdown-on-sigterm failover` (set for the run, put back after) a cluster primary hands its slots to a synced
replica before it exits: no detection, no loss. A Sentinel-managed master only waits for its replicas to catch up
(SHUTDOWN FAILOVER is cluster-only in Valkey 9.0/9.1), then the sentinels fail over as after a kill. The primary's
log lines from the shutdown say whether it handed over (evidence()).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lib.faults.fault import ALWAYS, OWNED, UNOWNED, Fault, FaultContext, failover_touches
from lib.faults.nodes import DockerNode, LocalNode, NodeControl, docker

SERVER_LOG_LINES = 30  # the old primary's log lines kept around the shutdown
HANDOVER_MARKS = ("failover to replica", "replicas are in sync when shutting down")  # Valkey 9.0's shutdown log


class Sigterm(Fault):
    name = "sigterm"
    help = "SIGTERM (docker stop) the primary with shutdown-on-sigterm failover: its own shutdown path"
    target = "the primary"
    hands_over = True  # a cluster primary hands its slots over before it exits
    needs_replica = "to promote"
    roles_put_back = {"sentinel": UNOWNED, "cluster": ALWAYS}
    config = {"shutdown-on-sigterm": "failover"}
    short_rejoin_timers = OWNED
    short_timers_after_failover = OWNED

    def __init__(self, node: NodeControl, touched: list[tuple[str, int]]):
        self.node, self.touched = node, touched
        self.how = "docker stop" if isinstance(node, DockerNode) else "SIGTERM"
        self.log_offset: int | str | None = None  # where the server's log stood at the fault

    @classmethod
    def build(cls, ctx: FaultContext) -> Sigterm:
        return cls(ctx.control(ctx.primary, cls.name), failover_touches(ctx))

    @property
    def description(self) -> str:
        return f"{self.how} {self.node.name} (shutdown-on-sigterm failover)"

    def inject(self) -> None:
        self.log_offset = self._log_position()
        self.node.terminate()

    def heal(self, timeout: float) -> bool:
        return self.node.start(timeout)

    def touches(self) -> list[tuple[str, int]]:
        return self.touched

    def _log_position(self) -> int | str | None:
        if isinstance(self.node, LocalNode):
            path = Path(self.node.stack.service(self.node.name).log)
            return path.stat().st_size if path.exists() else 0
        if isinstance(self.node, DockerNode):
            return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return None

    def evidence(self, promoted: tuple[str, int] | None) -> dict[str, Any]:
        """The server's shutdown lines: did it hand over to a replica?"""
        lines = self._log_since()
        if lines is None:
            return {}
        handover = [line for line in lines if any(mark in line.lower() for mark in HANDOVER_MARKS)]
        return {"server_log": lines[-20:], "server_log_handover": bool(handover),
                "server_log_handover_line": handover[-1].split(" * ", 1)[-1] if handover else None}

    def _log_since(self) -> list[str] | None:
        try:
            if isinstance(self.node, LocalNode) and isinstance(self.log_offset, int):
                with open(self.node.stack.service(self.node.name).log, errors="replace") as log:
                    log.seek(self.log_offset)
                    return log.read().splitlines()[-SERVER_LOG_LINES:]
            if isinstance(self.node, DockerNode) and isinstance(self.log_offset, str):
                return docker("logs", "--since", self.log_offset, self.node.name).splitlines()[-SERVER_LOG_LINES:]
        except Exception:  # noqa: BLE001 - no log to read is a missing note, never a failed run
            return None
        return None
