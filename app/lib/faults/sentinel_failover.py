"""SENTINEL FAILOVER as a fault: a promotion ordered through the sentinels, nothing killed.

Plain (--fault graceful): the old master is demoted, not stopped, so what it acknowledged between the
promotion order and its demotion is discarded: the consistency check counts that loss (docs/ha.md).
COORDINATED (--fault coordinated, Valkey 9.0+): the sentinel asks the old master to FAILOVER to the replica,
which pauses writes until the replica has caught up; only the servers' logs tell which path really ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import redis

from lib.errors import SetupError
from lib.faults.fault import Fault
from lib.ha_client import Address, HAClient
from lib.launcher.local_stack import LocalStack
from lib.util import format_endpoint
from lib.waits import PollPolicy, WaitTimeout, wait_until

# Right after a start or a failover the sentinel may not have INFO from the replicas yet and answers
# NOGOODSLAVE; Valkey's own test (17-manual-coordinated.tcl) retries for 300 x 50 ms.
NOGOODSLAVE_RETRY_S = 15.0
NOGOODSLAVE_POLICY = PollPolicy(first=0.05, cap=0.05)
# What the servers log on the coordinated path (Valkey 9.0.0 and 9.1.2); the sentinel's log is the same on both.
OLD_MASTER_LINE = "FAILOVER requested to"
NEW_MASTER_LINE = "Failover request received"


class SentinelFailover(Fault):
    """SENTINEL FAILOVER [COORDINATED]: a promotion without killing anything (works without shell access)."""

    def __init__(self, ha: HAClient, *, coordinated: bool = False, stack: LocalStack | None = None):
        self.ha, self.coordinated = ha, coordinated
        self.logs = ServerLogs(stack) if stack is not None else None  # None: no server log to read (compose)

    @property
    def description(self) -> str:
        if self.coordinated:
            return "SENTINEL FAILOVER COORDINATED (the old master pauses writes until the replica has caught up)"
        return "SENTINEL FAILOVER (graceful: the old master is demoted, not killed)"

    def inject(self) -> None:
        if self.logs is not None:
            self.logs.mark()
        command = ["SENTINEL", "FAILOVER", self.ha.master_name, *(["COORDINATED"] if self.coordinated else [])]

        def accepted() -> tuple[bool, str]:
            errors = self._ask_each_sentinel(command)
            if errors and not (self.coordinated and any("NOGOODSLAVE" in e for e in errors)):
                raise SetupError(f"no sentinel accepted {' '.join(command)}: {'; '.join(errors)}")
            return not errors, "; ".join(errors)

        try:
            wait_until(accepted, timeout=NOGOODSLAVE_RETRY_S, what=f"a sentinel to accept {' '.join(command)}",
                       policy=NOGOODSLAVE_POLICY, transient=())
        except WaitTimeout as exc:
            raise SetupError(f"no sentinel accepted {' '.join(command)} within {NOGOODSLAVE_RETRY_S:.0f}s: "
                             f"{exc.observed}") from None

    def _ask_each_sentinel(self, command: list[str]) -> list[str]:
        """[] once a sentinel accepted; else each sentinel's error."""
        errors = []
        for address in self.ha.sentinel_addresses:
            client = self.ha.node(address, sentinel=True)
            try:
                client.execute_command(*command)
                return []
            except redis.RedisError as exc:
                errors.append(f"{format_endpoint(*address)}: {exc}")
            finally:
                client.close()
        return errors

    def path_evidence(self, old: Address, new: Address | None) -> dict:
        """coordinated_path_seen from the old and new master's logs since the fault (None: no logs to read)."""
        if self.logs is None or new is None:
            return {"coordinated_path_seen": None}
        old_lines = self.logs.lines_since_mark(old[1], OLD_MASTER_LINE)
        new_lines = self.logs.lines_since_mark(new[1], NEW_MASTER_LINE)
        return {"coordinated_path_seen": bool(old_lines and new_lines),
                "coordinated_log_lines": [line.strip() for line in (*old_lines[:2], *new_lines[:2])]}


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
