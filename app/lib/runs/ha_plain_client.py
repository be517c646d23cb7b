"""The yardstick client of a failover run: redis-py's own Sentinel client with its default settings."""

from __future__ import annotations

from collections.abc import Callable

from redis.sentinel import Sentinel

from lib.clients.probe import PlainClientProbe
from lib.ha_client import Address, HAClient


class RemappedSentinel(Sentinel):
    """redis-py's stock Sentinel client, except that the addresses it discovers go through a remap.

    The yardstick must be what a user gets from redis-py, yet on Docker Compose the sentinels
    announce names (valkey-master:6379) that only resolve inside the compose network. So the only
    difference from stock: the result of the stock discover_master/discover_slaves is translated
    (valkey-master:6379 -> 127.0.0.1:6379). Discovery itself (the first healthy SENTINEL MASTERS
    answer), the connection pool, its reconnect after errors and READONLY, and the retries are
    redis-py's defaults. (Stock force_master_ip maps every master to one IP and leaves replicas alone.)
    """

    def __init__(self, sentinels: list[Address], remap: Callable[[Address], Address], **kwargs):
        super().__init__(sentinels, **kwargs)
        self.remap = remap

    def discover_master(self, service_name: str) -> Address:
        return self.remap(super().discover_master(service_name))

    def discover_slaves(self, service_name: str) -> list[Address]:
        return [self.remap(address) for address in super().discover_slaves(service_name)]


def plain_sentinel_client(ha: HAClient, key: str) -> PlainClientProbe:
    """redis-py's own Sentinel client, default settings, as a user would write it (see RemappedSentinel)."""
    sentinel_kwargs = {"password": ha.sentinel_password} if ha.sentinel_password else None
    sentinel = RemappedSentinel(ha.sentinel_addresses, ha.remap, sentinel_kwargs=sentinel_kwargs,
                                password=ha.password)
    master = sentinel.master_for(ha.master_name)

    def close() -> None:
        master.close()
        for client in sentinel.sentinels:
            client.close()

    return PlainClientProbe(lambda seq: master.set(key, seq), close, key=key)
