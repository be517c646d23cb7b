"""A library's stock Sentinel class, except that the addresses it discovers go through a remap.

On Docker Compose the sentinels announce names (valkey-master:6379) that only resolve inside the compose
network, so a stock client on the host needs them translated (valkey-master:6379 -> 127.0.0.1:6379).
Discovery itself (the first healthy SENTINEL MASTERS answer), the pool, its reconnect after errors and
READONLY, and the retries stay the library's own. (Stock force_master_ip maps every master to one IP and
leaves replicas alone.) Used for redis-py's yardstick client and for redis-py / valkey-py as compared
libraries; master look-ups can be counted.
"""

from __future__ import annotations

from collections.abc import Callable

from lib.clients.call_counter import CallCounter

Address = tuple[str, int]


def remapped_sentinel(base: type) -> type:
    """A subclass of the Sentinel class `base` (redis-py's or valkey-py's) that remaps what it discovers."""

    class RemappedSentinel(base):  # type: ignore[valid-type, misc]
        def __init__(self, sentinels: list[Address], remap: Callable[[Address], Address],
                     lookups: CallCounter | None = None, **kwargs):
            super().__init__(sentinels, **kwargs)
            self.remap, self.lookups = remap, lookups or CallCounter()

        def discover_master(self, service_name: str) -> Address:
            self.lookups.add()
            return self.remap(super().discover_master(service_name))

        def discover_slaves(self, service_name: str) -> list[Address]:
            return [self.remap(address) for address in super().discover_slaves(service_name)]

    return RemappedSentinel
