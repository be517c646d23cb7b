"""Plain clients kept one per address, for code that asks the same servers again and again.

The failover watches ask every 5-20 ms (CLUSTER NODES, SENTINEL GET-MASTER-ADDR-BY-NAME, a probe's SET).
Building a redis.Redis and its connection for each question cost 2.6 ms of CPU on loopback, a kept one
0.2 ms, and the test tier runs on 2 cores. The clients are built without retries by their owner, so a
connection that broke fails one question only; the next one connects again.
"""

from __future__ import annotations

from collections.abc import Callable

import redis

Address = tuple[str, int]


class KeptClients:
    """address -> the client build(address) made the first time it was asked for; close() closes them all."""

    def __init__(self, build: Callable[[Address], redis.Redis]):
        self._build = build
        self._clients: dict[Address, redis.Redis] = {}

    def __getitem__(self, address: Address) -> redis.Redis:
        client = self._clients.get(address)
        if client is None:
            client = self._clients[address] = self._build(address)
        return client

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
