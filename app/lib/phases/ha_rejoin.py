"""A stopped node rejoining after the failover was measured: shorter sentinel timers meanwhile, and the
wait until it is a synced replica (the checks and the roles' put-back both wait for that)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis

from lib.ha_client import Address, HAClient
from lib.util import format_endpoint
from lib.waits import wait_until

# A restarted old master becomes a replica only after Sentinel has polled its INFO (every 10 s
# outside a failover) and seen it report role:master for 4 publish periods (4 x 2 s): 8-10 s of
# every run was spent on those two timers. On our own local stacks, and only after the failover was
# measured, the rejoin is watched with shorter timers (set at runtime, put back afterwards); set
# before the fault, a shorter INFO period would make +promoted-slave come up to 0.9 s earlier than
# with the defaults (measured), so the failover figures would not be Sentinel's. 100 ms each (was
# 1000/500 ms) took a local ha_test run from 11.7 s to 10.0 s (the rejoin from 4.2 s to 2.1 s).
REJOIN_SENTINEL_DEBUG = {"INFO-PERIOD": 100, "PUBLISH-PERIOD": 100}


@contextlib.contextmanager
def faster_rejoin(ha: HAClient) -> Iterator[None]:
    """SENTINEL DEBUG (Redis 7+/Valkey) on every sentinel for the duration, then the old values."""
    saved: list[tuple[redis.Redis, list]] = []
    for address in ha.sentinel_addresses:
        client = ha.node(address, sentinel=True)
        try:
            current = client.execute_command("SENTINEL", "DEBUG")
            old = {k: current[k] for k in REJOIN_SENTINEL_DEBUG if k in current}
            client.execute_command("SENTINEL", "DEBUG", *_flat(REJOIN_SENTINEL_DEBUG))
            saved.append((client, _flat(old)))
        except redis.RedisError:
            client.close()  # an older sentinel, or unreachable: the rejoin just takes longer
    try:
        yield
    finally:
        for client, old in saved:
            with contextlib.suppress(redis.RedisError):
                client.execute_command("SENTINEL", "DEBUG", *old)
            client.close()


def _flat(settings: dict) -> list:
    return [item for pair in settings.items() for item in pair]


def wait_synced_replica(ha: HAClient, replica: Address, master: Address, timeout: float) -> str:
    """replica replicates from master with its link up and no sync under way; returns what was seen."""
    def synced() -> tuple[bool, str]:
        node = ha.node(ha.remap(replica))
        try:
            info = node.info("replication")
        finally:
            node.close()
        seen = (f"role={info.get('role')} master={info.get('master_host')}:{info.get('master_port')} "
                f"link={info.get('master_link_status')} sync_in_progress={info.get('master_sync_in_progress')}")
        return (info.get("role") == "slave" and int(info.get("master_port", 0)) == master[1]
                and info.get("master_link_status") == "up" and not int(info.get("master_sync_in_progress", 0))), seen

    return wait_until(synced, timeout=timeout, what=f"{format_endpoint(*replica)} to be a synced replica of "
                      f"{format_endpoint(*master)}")
