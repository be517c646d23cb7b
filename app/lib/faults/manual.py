"""A person kills a primary (`docker kill`, `kill -9`, a console): the harness waits for it and measures.

The fault's moment is when the harness sees the primary stop answering, not when it began to wait. On a cluster
the person may kill any primary: the run follows the shard that lost it. Healing is the person's too: the harness
says what to start and waits until it answers.
"""

from __future__ import annotations

import time

from lib.faults.fault import OWNED, Fault, FaultContext, Node, WaitNotice
from lib.ha_client import answers
from lib.launcher.discovery import stack_serving
from lib.util import format_endpoint
from lib.waits import WaitTimeout, wait_until


class Manual(Fault):
    name = "manual"
    help = "you kill a primary yourself (docker kill, kill -9); the harness waits for it, then measures"
    target = "the primary you kill"
    unattended = False
    by_hand = True
    healed_by_person = True
    strict = False
    loss_explained = ("asynchronous replication: writes the dead primary acknowledged but had not sent to its "
                      "replica")
    short_timers_after_failover = OWNED
    can_heal = False  # the person starts it again

    def __init__(self, ctx: FaultContext, hint: str, restart_hint: str):
        self.ctx, self.hint, self.restart_hint = ctx, hint, restart_hint
        self.timeout = float(ctx.options.get("manual_timeout", 300.0))
        self.down: Node | None = None

    @classmethod
    def build(cls, ctx: FaultContext) -> Manual:
        primary = ctx.primary
        local = stack_serving(ctx.stack_name, primary.reachable)
        if local:
            start = f"python app/stack.py start {local[1] if ctx.topology == 'sentinel' else 'SERVICE'}"
            return cls(ctx, f"python app/stack.py kill {local[1]}", start)
        if not primary.announced[0][0].isdigit():  # a compose service name
            name = primary.announced[0]
            return cls(ctx, f"docker kill {name}",
                       f"docker start {name if ctx.topology == 'sentinel' else 'CONTAINER'}")
        return cls(ctx, "kill the master process", "start it again")

    @property
    def who(self) -> str:
        return format_endpoint(*self.ctx.primary.announced) if self.ctx.topology == "sentinel" else "any primary"

    @property
    def description(self) -> str:
        return f"waiting for a person to kill {self.who} ({self.hint})"

    def _down_primary(self) -> Node | None:
        primaries = self.ctx.primaries or [self.ctx.primary]
        return next((p for p in primaries if not answers(p.reachable, self.ctx.password, 0.3)), None)

    def inject(self) -> None:
        deadline = time.monotonic() + self.timeout
        role = "the master " if self.ctx.topology == "sentinel" else ""
        message = f"[bold]Now kill {role}{self.who}[/], e.g. {self.hint}  (waiting up to {self.timeout:.0f}s)"

        def down() -> tuple[bool, str]:
            left = max(0.0, deadline - time.monotonic())
            view = self.ctx.live_view(left) if self.ctx.live_view else None
            self._notify(WaitNotice("kill", message, left, view))
            self.down = self._down_primary()
            return self.down is not None, "every primary still answers"

        try:
            wait_until(down, timeout=self.timeout, what=f"someone to kill {self.who}")
        finally:
            self._notify(WaitNotice("killed", message, max(0.0, deadline - time.monotonic())))

    def heal(self, timeout: float) -> bool:
        node = self.down or self.ctx.primary
        self._notify(WaitNotice("restart", f"now start {format_endpoint(*node.announced)} again ({self.restart_hint}); "
                                f"waiting up to {timeout:.0f}s", timeout))
        try:
            wait_until(lambda: (answers(node.reachable, self.ctx.password, 0.3), "not answering yet"), timeout=timeout,
                       what=f"{format_endpoint(*node.announced)} to be started again")
        except WaitTimeout:
            return False
        return True

    def undo(self, timeout: float = 60.0) -> str | None:
        if not self.pending_heal:
            return None
        return f"the node was killed by hand: start it again yourself ({self.restart_hint})"

    def hit(self) -> tuple[str, int] | None:
        return self.down.reachable if self.down else None

    def _notify(self, notice: WaitNotice) -> None:
        if self.ctx.notify is not None:
            self.ctx.notify(notice)
