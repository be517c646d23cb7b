"""What the HA suite may do to servers the harness did not start: a fault or the run's CONFIG SET is refused
there (exit 2, before any write) unless --allow-destructive."""

from __future__ import annotations

from lib.clients.server_config import ConfigChange
from lib.description import TestDescription
from lib.faults.fault import Fault
from lib.ha_client import Address, HAClient
from lib.launcher.ownership import ownership, require_owned
from lib.util import format_endpoint


def require_ownership(test: TestDescription, ha: HAClient, fault: Fault | None, reachable: Address) -> bool:
    """Refuse a fault on servers the harness did not start unless --allow-destructive; True if they are ours.

    A fault done by hand is the person's action, and --fault none changes nothing but our own keys; so are a user's
    own commands (a fault that touches nothing itself): only whether the servers are ours is asked.
    Checked before any write, so a refusal leaves the target exactly as it was.
    """
    if fault is None or fault.by_hand:
        return True
    addresses = fault.touches()
    if not addresses:
        return all(ownership(*a).owned for a in [reachable, *ha.sentinel_addresses])
    found = require_owned(addresses, allowed=test.allow_destructive,
                          action=f"run {fault.description} against {format_endpoint(*reachable)}")
    return all(o.owned for o in found)


def config_for_run(test: TestDescription, ha: HAClient, reachable: Address, fault: Fault) -> list[ConfigChange]:
    """--min-replicas-to-write on every data node, the fault's own settings on the master: refused (exit 2) on
    servers the harness did not start unless --allow-destructive; applied just before the fault, put back after."""
    changes = []
    if test.min_replicas_to_write is not None:
        nodes = [reachable, *ha.sentinel.discover_slaves(ha.master_name)]
        settings = {"min-replicas-to-write": str(test.min_replicas_to_write)}
        if test.min_replicas_max_lag is not None:
            settings["min-replicas-max-lag"] = str(test.min_replicas_max_lag)
        require_owned(nodes, allowed=test.allow_destructive,
                      action=f"CONFIG SET {' '.join(f'{k} {v}' for k, v in settings.items())} on "
                             f"{', '.join(format_endpoint(*n) for n in nodes)}")
        changes.append(ConfigChange(ha.node, nodes, settings))
    if fault.config:  # the fault's ownership check covers the master
        changes.append(ConfigChange(ha.node, [reachable], dict(fault.config)))
    return changes
