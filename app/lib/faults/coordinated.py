"""A promotion the old primary agrees to: `SENTINEL FAILOVER COORDINATED` (Valkey 9.0+), or `CLUSTER FAILOVER`.

The old primary pauses writes until the replica has caught up, then hands over: no acknowledged write should be
lost, so any loss is a FAIL and the verdict quotes the path. Only the servers' logs tell whether Sentinel really took
the coordinated path (the sentinel logs the same either way): on a local stack they are read (evidence()).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.faults.fault import FaultContext, Node
from lib.faults.graceful import Graceful
from lib.launcher.local_stack import LocalStack
from lib.util import format_endpoint

# What the servers log on the coordinated path (Valkey 9.0.0 and 9.1.2); the sentinel's log is the same on both.
OLD_MASTER_LINE = "FAILOVER requested to"
NEW_MASTER_LINE = "Failover request received"


class Coordinated(Graceful):
    name = "coordinated"
    help = ("SENTINEL FAILOVER COORDINATED, or CLUSTER FAILOVER: the old primary pauses writes until the replica "
            "caught up; any loss is a FAIL")
    coordinated = True

    def __init__(self, ctx: FaultContext, replica: Node | None):
        super().__init__(ctx, replica)
        stack = ctx.stack() if replica is None else None
        self.logs = ServerLogs(stack) if stack is not None else None  # None: no server log to read (compose)

    @property
    def description(self) -> str:
        if self.replica is None:
            return "SENTINEL FAILOVER COORDINATED (the old master pauses writes until the replica has caught up)"
        return (f"CLUSTER FAILOVER on replica {format_endpoint(*self.replica.announced)} (coordinated: the primary "
                "pauses writes until the replica has its offset)")

    def command(self) -> list[str]:
        return [*super().command(), "COORDINATED"]

    def inject(self) -> None:
        if self.logs is not None:
            self.logs.mark()
        super().inject()

    def evidence(self, promoted: tuple[str, int] | None) -> dict[str, Any]:
        """coordinated_path_seen from the old and new master's logs since the fault (None: no logs to read)."""
        if self.replica is not None:
            return {}
        if self.logs is None or promoted is None:
            return {"coordinated_path_seen": None}
        old_lines = self.logs.lines_since_mark(self.ctx.primary.announced[1], OLD_MASTER_LINE)
        new_lines = self.logs.lines_since_mark(promoted[1], NEW_MASTER_LINE)
        return {"coordinated_path_seen": bool(old_lines and new_lines),
                "coordinated_log_lines": [line.strip() for line in (*old_lines[:2], *new_lines[:2])]}

    def explain_loss(self, evidence: dict[str, Any]) -> str | None:
        if self.replica is not None:
            return None
        path = {True: "its log lines were seen", False: "the servers did not log it",
                None: "no server log to tell"}[evidence.get("coordinated_path_seen")]
        return (f"SENTINEL FAILOVER COORDINATED should lose no acknowledged write (coordinated path: {path}; see "
                "master_kill's coordinated_path_seen)")


@dataclass
class ServerLogs:
    """A local stack's server logs, read from where each one was when mark() ran (a shared stack has history)."""

    stack: LocalStack
    offsets: dict[str, int] = field(default_factory=dict)

    def mark(self) -> None:
        self.offsets = {name: _size(svc.log) for name, svc in self.stack.services.items() if svc.kind == "server"}

    def lines_since_mark(self, port: int, needle: str) -> list[str]:
        name = self.stack.service_at(port)
        if name is None or name not in self.offsets:
            return []
        try:
            with open(self.stack.service(name).log, "rb") as log:
                log.seek(self.offsets[name])
                text = log.read().decode(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if needle in line]


def _size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0
