"""The fault contract: one file per fault says everything about it, and code elsewhere asks the fault.

A fault file under lib/faults/ defines one Fault subclass whose class attributes are its facts (which topologies
it applies to, which node it hits, what it should cause, whether it swaps roles, how a loss is judged, what it
marks on the timeline) and whose methods act (build checks what it needs before any server is touched; inject;
heal; undo after Ctrl-C). lib/faults/registry.py lists the files, one line each; `--fault-file PATH` loads a
user's file written to the same contract (docs/faults.md). Jepsen's nemesis packages are the model: the code
around a fault never asks which fault it is, only what the fault says.

Faults never print: a fault done by hand reports what it asks of the person through ctx.notify.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from lib import events
from lib.errors import SetupError
from lib.faults.nodes import NodeControl, node_control
from lib.history import INJECT, NEMESIS, History
from lib.launcher.local_stack import LocalStack
from lib.waits import WaitTimeout

Address = tuple[str, int]

EVIDENCE = "evidence"  # the nemesis's observation of what the fault saw itself

# What a fault should cause: the run waits for it, and the checks judge against it.
PROMOTION = "promotion"  # a replica takes over
NO_FAILOVER = "no failover"  # the primary keeps its role; nothing may be promoted
SHARD_DOWN = "shard down"  # every copy of a shard is gone: nothing can be promoted until it is healed
NO_FAILOVER_UNTIL_HEALED = "no failover until healed"  # then a promotion once heal_watched() ran (quorum loss)

# When the harness makes the old primary primary again after the run (the roles are then as they were).
ALWAYS, UNOWNED, OWNED, NEVER = "always", "on servers the harness did not start", "on servers it started", "never"

# How an acknowledged write lost to the fault is judged.
LOSS_FAILS = "any acknowledged write lost is a FAIL"
LOSS_OF_LOST_SHARD_WARNS = "writes lost with the whole shard are a WARN; any other loss is a FAIL"


@dataclass(frozen=True)
class Node:
    """A server as the topology announces it and as this machine reaches it."""

    announced: Address
    reachable: Address
    node_id: str | None = None  # cluster nodes


@dataclass(frozen=True)
class WaitNotice:
    """What a fault done by hand asks of the person right now, for the entry point to show."""

    phase: str  # "kill": waiting for the kill; "killed": seen; "restart": waiting for the restart
    message: str  # rich markup
    remaining_s: float
    view: Any = None  # the live view while waiting for the kill


@dataclass
class FaultContext:
    """What a suite resolved before the run, for a fault to build itself from: no fault asks a suite."""

    topology: str  # "sentinel" | "cluster"
    suite: str  # "ha" | "cluster" | "cache"
    where: str  # the primary's place, for messages: "the master valkey-master:6379", "shard 0-5460"
    primary: Node  # the master, or the primary of slot 0
    replicas: list[Node]  # its replicas
    others: list[Node] = field(default_factory=list)  # every other data node (cluster)
    sentinels: list[Node] = field(default_factory=list)  # sentinel topology
    primaries: list[Node] = field(default_factory=list)  # every primary (a person may kill any of them)
    master_name: str | None = None
    password: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # fault (the --fault value), kill_cmd, restore_cmd,
    # manual_timeout
    connect: Callable[..., redis.Redis] | None = None  # connect(address, sentinel=False): a plain client
    sentinel_master: Callable[[], dict] | None = None  # SENTINEL MASTER of the master name
    notify: Callable[[WaitNotice], None] | None = None  # a fault done by hand tells the person what to do
    live_view: Callable[[float], Any] | None = None  # what a person sees while the harness waits for the kill
    history: History | None = None  # the run's, for a fault that watches what the clients see

    @property
    def stack_name(self) -> str:
        """The topology's name among the compose files and local stacks: "ha" or "cluster"."""
        return "ha" if self.topology == "sentinel" else self.topology

    def control(self, node: Node, fault: str, mode: str = "auto") -> NodeControl:
        """The node's process (local stack) or container (compose); else a SetupError naming what works."""
        return node_control(mode, self.stack_name, node.announced, node.reachable, fault=fault)

    def stack(self) -> LocalStack | None:
        """The local stack serving the primary, if one does (its server logs tell what a server did)."""
        from lib.launcher.discovery import stack_serving

        found = stack_serving(self.stack_name, self.primary.reachable)
        return found[0] if found else None


class Fault:
    """One way to break the system under test. Subclasses set the facts and implement the acts."""

    # ---- facts: what the fault is, read by the suites, the checks, the report and --help ----
    name: str = ""  # the --fault value (a file with several: `names`, the first being `name`)
    names: tuple[str, ...] = ()  # every --fault value this file answers to (default: (name,))
    help: str = ""  # one line for --help
    helps: dict[str, str] = {}  # a file with several names: the line for each
    topologies: tuple[str, ...] = ("sentinel", "cluster")
    not_for_cache: str | None = None  # why the cache suite refuses it (it measures HTTP hits through a promotion)
    target: str = "the primary"  # which node or role it hits, in words
    expects: str = PROMOTION
    needs_replica: str | None = None  # "to promote", "to kill": refused on a primary without a replica
    why_no_failover: str = ""  # expects NO_FAILOVER...: why none may come, in words ("only a replica was killed")
    heals_in_run: bool = False  # the run heals it as soon as the expected outcome is seen
    pins_old_primary: bool = False  # a writer stays on the old primary: what it acknowledges there counts
    roles_put_back: dict[str, str] = {"sentinel": NEVER, "cluster": NEVER}  # by topology
    loss: str = LOSS_FAILS
    loss_explained: str | None = None  # why this fault can lose acknowledged writes, quoted with a loss
    strict: bool = True  # its run reports the write pause, the heal, NOREPLICAS in the verdict's notes
    hands_over: bool = False  # a promotion ordered on a healthy primary: no outage is expected
    minority_side: bool = False  # the writer kept on the old primary is on the minority side of a cut
    marks: tuple[str, ...] = ()  # the events it adds to the timeline and the plot, beyond fault and healed
    config: dict[str, str] = {}  # CONFIG SET on the primary for the run (put back after)
    short_rejoin_timers: str = NEVER  # Sentinel's timers shortened while the stopped node rejoins (not in undo)
    short_timers_after_failover: str = NEVER  # ... and, in replica_sync, once every sentinel named the new master
    unattended: bool = True  # it runs with no person and no command of the user's (a benchmark may run it)
    options: tuple[str, ...] = ()  # the command-line options it takes, e.g. ("kill_cmd", "restore_cmd")
    by_hand: bool = False  # a person causes it: the moment is when it is seen, not when inject() began
    healed_by_person: bool = False  # a person heals it: the run gives heal() --manual-timeout
    can_heal: bool = True  # False: nothing to heal (a failover stopped nothing), or only the person can

    # ---- state, for the run and an interrupt ----
    pending_heal: bool = False  # injected and not healed yet: an interrupted run knows to heal it
    stops: Node | None = None  # a node it stops that is not the primary (a replica): the run watches it rejoin

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        """Refuse bad options (a SetupError, one line) before any server is touched; options: the CLI's values."""

    @classmethod
    def build(cls, ctx: FaultContext) -> Fault:
        """Check what the fault needs (a SetupError names what is missing) and make it; nothing touched yet."""
        raise NotImplementedError

    @property
    def description(self) -> str:
        """What it does, in one line: the timeline, the verdicts and the JSON quote it."""
        return self.name

    def inject(self) -> None:
        """Cause the fault now."""

    def heal(self, timeout: float) -> bool:
        """Put back what the fault broke; False if it did not come back within timeout."""
        return True

    def heal_watched(self, timeout: float) -> str:
        """expects NO_FAILOVER_UNTIL_HEALED: the part healed once the watch saw no failover; one line."""
        raise NotImplementedError

    def touches(self) -> list[Address]:
        """Reachable addresses of the servers whose process, role or links it changes (the ownership check)."""
        return []

    def hit(self) -> Address | None:
        """The primary it took down, once it did (reachable address); None: the primary it was built for."""
        return None

    def evidence(self, promoted: Address | None) -> dict[str, Any]:
        """What the fault itself saw (a server's log lines), for the verdict's metrics; asked after the run, with
        the node promoted in its place (announced address; None: none was)."""
        return {}

    def explain_loss(self, evidence: dict[str, Any]) -> str | None:
        """Why this fault can lose acknowledged writes, quoted next to a loss (evidence: what evidence() said)."""
        return self.loss_explained

    def undo(self, timeout: float = 60.0) -> str | None:
        """After Ctrl-C or SIGTERM: heal what is still broken; one line saying what happened (None: nothing)."""
        if not self.pending_heal:
            return None
        try:
            back = heal_fault(self, timeout)
        except (SetupError, WaitTimeout, redis.RedisError, OSError) as exc:
            return f"could not undo {self.description}: {type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
        return (f"undone: {self.description} ({'healed' if self.heals_in_run else 'started again'})" if back else
                f"could not undo {self.description}: not back within {timeout:.0f}s")

    # ---- derived, so callers never ask which fault it is ----
    def puts_back_roles(self, topology: str, owned: bool) -> bool:
        policy = self.roles_put_back.get(topology, NEVER)
        return policy == ALWAYS or (policy == UNOWNED and not owned) or (policy == OWNED and owned)

    def shortens_rejoin(self, owned: bool, *, after_failover: bool = False) -> bool:
        """Sentinel's timers shortened while the stopped node rejoins. after_failover: in replica_sync, once every
        sentinel named the new master (not while undoing an interrupted run, when a failover may be under way)."""
        policies = (self.short_rejoin_timers, self.short_timers_after_failover if after_failover else NEVER)
        return any(p == ALWAYS or (p == OWNED and owned) for p in policies)

    def facts(self) -> dict[str, Any]:
        """The facts as the saved test description carries them: a saved run can be judged without the file."""
        return {"name": self.name, "description": self.description, "target": self.target, "expects": self.expects,
                "heals_in_run": self.heals_in_run, "pins_old_primary": self.pins_old_primary, "loss": self.loss,
                "strict": self.strict, "hands_over": self.hands_over, "by_hand": self.by_hand,
                "minority_side": self.minority_side, "loss_explained": self.loss_explained,
                "marks": list(self.marks), "config": dict(self.config)}


def make_fault(cls: type[Fault], ctx: FaultContext) -> Fault:
    """cls.build(ctx), after the checks its facts ask for: a SetupError here has touched nothing."""
    if cls.needs_replica and not ctx.replicas:
        raise SetupError(f"--fault {ctx.options.get('fault') or cls.name}: {ctx.where} has no replica "
                         f"{cls.needs_replica}")
    return cls.build(ctx)


def failover_touches(ctx: FaultContext) -> list[Address]:
    """The servers a failover of the primary changes: the sentinels (their config) or the primary's replica."""
    if ctx.topology == "sentinel":
        return [ctx.primary.reachable, *(s.reachable for s in ctx.sentinels)]
    return [ctx.primary.reachable, *(r.reachable for r in ctx.replicas[:1])]


def inject_recorded(fault: Fault, history: History, seen: str) -> float:
    """Inject the fault, record it in the history, and return when it happened.

    A fault done by hand happens when it is seen (the node stopped answering), not when the wait for it
    began: that moment is recorded as "fault seen" and returned instead.
    """
    fault_at = time.monotonic()
    history.event(events.FAULT, fault.description, at=fault_at)
    fault.pending_heal = fault.can_heal or fault.by_hand  # a kill interrupted half-way may still have happened
    stops = f"{fault.stops.announced[0]}:{fault.stops.announced[1]}" if fault.stops is not None else None
    try:
        fault.inject()
    except BaseException as exc:
        history.observe(NEMESIS, INJECT, {"description": fault.description, "stops": stops}, at=fault_at,
                        error=f"{type(exc).__name__}: {exc}")
        raise
    history.observe(NEMESIS, INJECT, {"description": fault.description, "stops": stops}, at=fault_at)
    if fault.by_hand:
        fault_at = time.monotonic()
        history.event(events.FAULT_SEEN, seen, at=fault_at)
    return fault_at


def record_evidence(fault: Fault, history: History, promoted: Address | None) -> dict[str, Any]:
    """What the fault saw itself, and its words for a loss, recorded for the checks (and --recheck) to read."""
    evidence = fault.evidence(promoted)
    history.observe(NEMESIS, EVIDENCE, {**evidence, "loss_explained": fault.explain_loss(evidence)})
    return evidence


def heal_fault(fault: Fault, timeout: float) -> bool:
    """Heal the fault (or wait for the person to); clears pending_heal once it is healed."""
    healed = fault.heal(timeout)
    if healed:
        fault.pending_heal = False
    return healed
