"""A promotion ordered on a healthy primary, nothing killed: `SENTINEL FAILOVER`, or `CLUSTER FAILOVER` on a replica.

Sentinel never pauses the old master: what it acknowledges between the promotion order and its demotion is
discarded when it is demoted, so the consistency check counts a loss (docs/ha.md). `CLUSTER FAILOVER` without FORCE
is coordinated already (the primary pauses its clients until the replica has its offset). Works without shell
access to the servers; the roles are put back afterwards on servers the harness did not start (cluster: always).
"""

from __future__ import annotations

import redis

from lib.errors import SetupError
from lib.faults.fault import ALWAYS, UNOWNED, Fault, FaultContext, Node
from lib.util import format_endpoint
from lib.waits import PollPolicy, WaitTimeout, wait_until

# Right after a start or a failover the sentinel may not have INFO from the replicas yet and answers NOGOODSLAVE;
# Valkey's own test (17-manual-coordinated.tcl) retries for 300 x 50 ms.
NOGOODSLAVE_RETRY_S = 15.0
NOGOODSLAVE_POLICY = PollPolicy(first=0.05, cap=0.05)
SENTINEL_LOSS = ("SENTINEL FAILOVER does not pause the old master, so what it acknowledged between the promotion "
                 "order and the switch is discarded when it is demoted (docs/ha.md)")


class Graceful(Fault):
    name = "graceful"
    help = "SENTINEL FAILOVER, or CLUSTER FAILOVER on the primary's replica: a promotion, nothing killed"
    target = "the primary (a replica is promoted in its place)"
    hands_over = True
    needs_replica = "to promote"
    roles_put_back = {"sentinel": UNOWNED, "cluster": ALWAYS}
    short_timers_after_failover = ALWAYS
    can_heal = False  # nothing stopped; the roles are put back by the suite
    coordinated = False

    def __init__(self, ctx: FaultContext, replica: Node | None):
        self.ctx, self.replica = ctx, replica
        self.strict = self.coordinated
        self.loss_explained = (SENTINEL_LOSS if ctx.topology == "sentinel" else
                               None if self.coordinated else "asynchronous replication: writes the old primary "
                               "acknowledged but had not sent to its replica")

    @classmethod
    def build(cls, ctx: FaultContext) -> Graceful:
        return cls(ctx, None if ctx.topology == "sentinel" else ctx.replicas[0])

    @property
    def description(self) -> str:
        if self.replica is None:
            return "SENTINEL FAILOVER (graceful: the old master is demoted, not killed)"
        return f"CLUSTER FAILOVER on replica {format_endpoint(*self.replica.announced)} (graceful)"

    def command(self) -> list[str]:
        return ["SENTINEL", "FAILOVER", str(self.ctx.master_name)]

    def inject(self) -> None:
        if self.replica is not None:
            cluster_failover(self.ctx, self.replica)
        else:
            sentinel_failover(self.ctx, self.command(), retry_nogoodslave=self.coordinated)

    def touches(self) -> list[tuple[str, int]]:
        if self.replica is not None:
            return [self.ctx.primary.reachable, self.replica.reachable]
        return [self.ctx.primary.reachable, *(s.reachable for s in self.ctx.sentinels)]


def cluster_failover(ctx: FaultContext, replica: Node) -> None:
    """CLUSTER FAILOVER on the replica: it takes over its shard in agreement with its primary."""
    assert ctx.connect is not None
    node = ctx.connect(replica.reachable)
    try:
        node.execute_command("CLUSTER FAILOVER")
    except redis.RedisError as exc:
        raise SetupError(f"CLUSTER FAILOVER on {format_endpoint(*replica.announced)} failed: {exc}") from None
    finally:
        node.close()


def sentinel_failover(ctx: FaultContext, command: list[str], *, retry_nogoodslave: bool) -> None:
    """The command on the first sentinel that accepts it; NOGOODSLAVE retried when asked (COORDINATED)."""
    def accepted() -> tuple[bool, str]:
        errors = _ask_each_sentinel(ctx, command)
        if errors and not (retry_nogoodslave and any("NOGOODSLAVE" in e for e in errors)):
            raise SetupError(f"no sentinel accepted {' '.join(command)}: {'; '.join(errors)}")
        return not errors, "; ".join(errors)

    try:
        wait_until(accepted, timeout=NOGOODSLAVE_RETRY_S, what=f"a sentinel to accept {' '.join(command)}",
                   policy=NOGOODSLAVE_POLICY, transient=())
    except WaitTimeout as exc:
        raise SetupError(f"no sentinel accepted {' '.join(command)} within {NOGOODSLAVE_RETRY_S:.0f}s: "
                         f"{exc.observed}") from None


def _ask_each_sentinel(ctx: FaultContext, command: list[str]) -> list[str]:
    """[] once a sentinel accepted; else each sentinel's error."""
    assert ctx.connect is not None
    errors = []
    for sentinel in ctx.sentinels:
        client = ctx.connect(sentinel.reachable, sentinel=True)
        try:
            client.execute_command(*command)
            return []
        except redis.RedisError as exc:
            errors.append(f"{format_endpoint(*sentinel.reachable)}: {exc}")
        finally:
            client.close()
    return errors
