"""Client-side sharding ("ring") over a cluster's primaries as independent nodes: the wrong way.

This is what an HTTP-cache middleware did when it claimed Redis Cluster support: pick a node by
hashing the key itself (key mod N), then talk to it as a standalone server. A cluster node serves
only the slots it owns and answers every other key with MOVED, which a plain client does not
follow. Kept here only to measure that against the real cluster store; never use it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import redis

from lib.workload.cache_store import storage_key, ttl_ms


class RingStore:
    """get/set/delete over independent redis.Redis clients, node = key % len(nodes)."""

    def __init__(self, nodes: list[redis.Redis], prefix: str):
        if not nodes:
            raise ValueError("a ring needs at least one node")
        self.nodes, self.prefix = nodes, prefix

    def node_for(self, key: int) -> redis.Redis:
        return self.nodes[key % len(self.nodes)]

    def get(self, key: int) -> tuple[bytes, bool]:
        value = self.node_for(key).get(storage_key(self.prefix, key))
        return (b"", False) if value is None else (value, True)

    def set(self, key: int, response: bytes, expiration: datetime) -> None:
        expires_in = ttl_ms(expiration)
        name = storage_key(self.prefix, key)
        if expires_in is None:
            self.node_for(key).unlink(name)
        else:
            self.node_for(key).set(name, response, px=expires_in)

    def delete(self, key: int) -> None:
        self.node_for(key).unlink(storage_key(self.prefix, key))


@dataclass
class StoreTally:
    """What one store did with the same operations: successes and errors by type."""

    ops: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    first_error: str | None = None

    @property
    def moved(self) -> int:
        return self.errors["MovedError"]

    def to_dict(self) -> dict:
        return {"ops": self.ops, "ok": self.ok, "moved": self.moved, "errors": dict(self.errors),
                "first_error": self.first_error}


def exercise(store, keys: list[int], expiration: datetime) -> StoreTally:
    """set, get, delete on every key, counting each error instead of stopping at the first."""
    tally = StoreTally()
    steps: list[Callable[[int], object]] = [lambda k: store.set(k, f"response {k}".encode(), expiration),
                                            store.get, store.delete]
    for step in steps:
        for key in keys:
            tally.ops += 1
            try:
                step(key)
                tally.ok += 1
            except redis.RedisError as exc:
                # The cluster store wraps server errors (CacheError, cause attached); count the server's type.
                cause = exc.__cause__ if isinstance(exc.__cause__, redis.RedisError) else exc
                tally.errors[type(cause).__name__] += 1
                tally.first_error = tally.first_error or f"{type(cause).__name__}: {cause}"
    return tally
