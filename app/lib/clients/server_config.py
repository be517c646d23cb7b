"""A CONFIG SET for the length of a run, always put back: the harness changes settings only this way.

Used for --min-replicas-to-write / --min-replicas-max-lag, cluster-require-full-coverage and
shutdown-on-sigterm. The old values are read first (CONFIG GET), so what is put back is what the
server had, not a default; a node that is down when the run ends is reported, not skipped in silence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from lib.util import format_endpoint

Address = tuple[str, int]


@dataclass
class ConfigChange:
    """settings on every node of nodes; connect(address) opens a plain client to one of them."""

    connect: Callable[[Address], redis.Redis]
    nodes: list[Address]
    settings: dict[str, str]
    saved: dict[Address, dict[str, str]] = field(default_factory=dict)

    def apply(self) -> None:
        """Read the old values, then set the new ones; a node that refuses is a RedisError (nothing half-set)."""
        for address in self.nodes:
            client = self.connect(address)
            try:
                old = {name: str(client.config_get(name).get(name, "")) for name in self.settings}
                self.saved[address] = old
                config_set(client, self.settings)
            finally:
                client.close()

    def put_back(self) -> list[str]:
        """Put back every saved value; returns one line per node that could not be restored."""
        problems = []
        for address, old in list(self.saved.items()):
            client = self.connect(address)
            try:
                config_set(client, old)
                del self.saved[address]
            except redis.RedisError as exc:
                problems.append(f"{format_endpoint(*address)}: could not put back {old}: {exc}")
            finally:
                client.close()
        return problems

    def __enter__(self) -> ConfigChange:
        self.apply()
        return self

    def __exit__(self, *exc: object) -> None:
        self.put_back()


def config_set(client: redis.Redis, settings: dict[str, str]) -> None:
    """One CONFIG SET for all of them (redis-py's config_set takes no keyword settings: names have dashes)."""
    client.execute_command("CONFIG SET", *(word for pair in settings.items() for word in pair))
