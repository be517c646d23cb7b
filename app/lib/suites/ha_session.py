"""What an HA run is about (Target) and what it changed (Session): its config put back, its keys deleted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from lib.clients.keyspace import delete_prefix
from lib.clients.server_config import ConfigChange
from lib.faults.fault import Fault
from lib.ha_client import Address, HAClient
from lib.launcher.local_stack import LocalStack
from lib.util import format_endpoint


@dataclass
class Target:
    sentinels: list[Address]
    source: str
    stack: LocalStack | None = None


@dataclass
class Session:
    """What this run changed and must undo however it ends (Ctrl-C too): keys, a fault, swapped roles."""

    namespace: str
    wrote: bool = False  # False: nothing to clean up (an unreachable target must cost one line, not a block)
    fault: Fault | None = None
    owned: bool = True  # the harness started the target
    allow_destructive: bool = False  # --allow-destructive: the servers are treated as someone else's

    @property
    def roles_ours(self) -> bool:
        """The roles a failover left may stay as they ended: the harness's own servers, without --allow-destructive
        (which treats them as someone else's: what the run changed is put back)."""
        return self.owned and not self.allow_destructive
    original_master: Address | None = None  # as the sentinels announced it before the run
    roles_put_back: bool = False
    config: list[ConfigChange] = field(default_factory=list)  # CONFIG SET for the run, put back however it ends


def put_config_back(session: Session) -> list[str]:
    """Every CONFIG SET of the run put back; one line per node where that failed (it is tried again later).

    Put back in the config file too: a sentinel that reconfigures a server during the failover sends it
    CONFIG REWRITE, which saved the run's value in the file (measured: a replica restarted in a later run
    came back with min-replicas-to-write 1). A server without a writable config file just says so.
    """
    problems = []
    for change in session.config:
        before = set(change.saved)
        problems += change.put_back()
        problems += [problem for address in before - set(change.saved)
                     if (problem := rewrite_config(change.connect, address))]
    session.config = [change for change in session.config if change.saved]
    return problems


def rewrite_config(connect: Callable[[Address], redis.Redis], address: Address) -> str | None:
    node = connect(address)
    try:
        node.execute_command("CONFIG REWRITE")
    except redis.ResponseError:
        pass  # no config file, or a read-only one (compose mounts valkey.conf :ro): nothing was saved there
    except redis.RedisError as exc:
        return f"{format_endpoint(*address)}: put back, but CONFIG REWRITE failed: {one_line(exc)}"
    finally:
        node.close()
    return None


def cleanup(ha: HAClient, ns: str) -> str | None:
    """SCAN + DEL of this run's keys only, on whichever node is master now; a failure is one line."""
    try:
        master = ha.node(ha.master_address())
        try:
            delete_prefix(master, ns)
        finally:
            master.close()
    except redis.RedisError as exc:
        return f"could not clean up keys {ns}*: {one_line(exc)}"
    return None


def one_line(exc: BaseException, limit: int = 160) -> str:
    text = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return text if len(text) <= limit else text[:limit - 1] + "…"
