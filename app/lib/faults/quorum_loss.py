"""Quorum loss: too few sentinels left to agree the master is down, then the master killed (Sentinel only).

Sentinel needs `quorum` sentinels to flag the master objectively down and a majority of all sentinels to elect the
leader that fails it over. With fewer running, a dead master stays dead: that is the expected outcome, reported as
such. The run watches for a while, starts the sentinels again (heal_watched) and measures how long the failover then
takes; the master itself is started again by the suite, as after a kill.
"""

from __future__ import annotations

from lib.errors import SetupError
from lib.faults.compound import Compound, one_stack
from lib.faults.fault import NO_FAILOVER_UNTIL_HEALED, OWNED, UNOWNED, FaultContext, failover_touches
from lib.faults.kill import Kill
from lib.util import format_endpoint

Address = tuple[str, int]


class QuorumLoss(Compound):
    name = "quorum-loss"
    help = ("stop enough sentinels that no failover can happen (2 of 3), kill the master, watch, then start the "
            "sentinels again")
    topologies = ("sentinel",)
    target = "the master, with enough sentinels stopped"
    expects = NO_FAILOVER_UNTIL_HEALED
    roles_put_back = {"sentinel": UNOWNED}
    short_rejoin_timers = OWNED
    short_timers_after_failover = OWNED

    def __init__(self, parts: list[Kill], why: str, touched: list[Address]):
        super().__init__(parts, "quorum loss")
        self.why_no_failover, self.touched = why, touched

    @classmethod
    def build(cls, ctx: FaultContext) -> QuorumLoss:
        assert ctx.sentinel_master is not None
        state = ctx.sentinel_master()
        known, quorum = int(state["num-other-sentinels"]) + 1, int(state["quorum"])
        given = [s.reachable for s in ctx.sentinels]
        stop = require_quorum_loss_possible(given, known, quorum)
        nodes = one_stack([ctx.control(s, cls.name) for s in ctx.sentinels[-stop:]]
                          + [ctx.control(ctx.primary, cls.name)])
        kills = [Kill(node, node_address) for node, node_address in
                 zip(nodes, [*given[-stop:], ctx.primary.reachable], strict=True)]
        why = f"quorum unreachable ({stop} of {known} sentinels stopped, quorum {quorum})"
        return cls(kills, why, failover_touches(ctx))

    def heal_watched(self, timeout: float) -> str:
        """Start the stopped sentinels again (the master stays down); one line saying how it went."""
        sentinels = self.parts[:-1]
        back = [part.heal(timeout) for part in reversed(sentinels) if part.pending_heal]
        for part in sentinels:
            part.pending_heal = False
        return (f"{len(sentinels)} sentinel(s) started again" if all(back)
                else f"not all of the {len(sentinels)} sentinels came back")

    def touches(self) -> list[Address]:
        return self.touched


def sentinels_to_stop(known: int, quorum: int) -> int:
    """How many of `known` sentinels must stop so that a failover cannot happen.

    It needs `quorum` sentinels to agree the master is down and a majority of all to elect a leader: with one
    fewer than the larger of the two left, one of them is out of reach (3 and quorum 2: stop 2).
    """
    majority = known // 2 + 1
    return known - (max(quorum, majority) - 1)


def require_quorum_loss_possible(given: list[Address], known: int, quorum: int) -> int:
    """How many of the given sentinels to stop; a SetupError if the ones we can reach are not enough."""
    stop = sentinels_to_stop(known, quorum)
    if known > len(given):
        raise SetupError(f"--fault quorum-loss: the sentinels know {known} sentinels but {len(given)} were given "
                         f"({', '.join(format_endpoint(*a) for a in given)}): give every one with --sentinel "
                         "HOST:PORT, or the harness could not stop enough of them")
    if stop >= known:
        raise SetupError(f"--fault quorum-loss: with {known} sentinel(s) and quorum {quorum}, every sentinel would "
                         "have to stop and nothing would be left to watch: use --fault auto")
    return stop
