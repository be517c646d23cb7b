"""The yardstick client of a failover run: redis-py's own Sentinel client with its default settings."""

from __future__ import annotations

from redis.sentinel import Sentinel

from lib.clients.probe import PlainClientProbe
from lib.clients.remapped_sentinel import remapped_sentinel
from lib.description import Loop
from lib.ha_client import HAClient
from lib.history import History

# redis-py's stock Sentinel client; the only difference: what it discovers goes through the remap
RemappedSentinel = remapped_sentinel(Sentinel)


def plain_sentinel_client(ha: HAClient, key: str, history: History, loop: Loop) -> PlainClientProbe:
    """redis-py's own Sentinel client, default settings, as a user would write it (see RemappedSentinel)."""
    sentinel_kwargs = {"password": ha.sentinel_password} if ha.sentinel_password else None
    sentinel = RemappedSentinel(ha.sentinel_addresses, ha.remap, sentinel_kwargs=sentinel_kwargs,
                                password=ha.password)
    master = sentinel.master_for(ha.master_name)

    def close() -> None:
        master.close()
        for client in sentinel.sentinels:
            client.close()

    return PlainClientProbe(lambda seq: master.set(key, seq), close, history, key=key, interval_s=loop.pause_s,
                            process=loop.process)
