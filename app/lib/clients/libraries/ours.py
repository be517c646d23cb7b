"""The harness's own clients (lib/ha_client.py, lib/cluster_client.py) as a compared library.

The same clients the suites write with, with their capped retry policy: the table must show whether
ours keeps up with what a user gets from a stock library (issue: ours must lead the table).
"""

from __future__ import annotations

from typing import TypeVar

from lib.clients.call_counter import CallCounter
from lib.clients.libraries.base import OURS, ClusterTarget, SentinelTarget, package_version
from lib.cluster_client import ClusterClient
from lib.ha_client import HAClient
from lib.history import FAIL, OPERATION_ERRORS, Attempts, ClientOpError

T = TypeVar("T")


def _translate(exc: BaseException, attempts: Attempts) -> ClientOpError:
    """Our clients retry: the op is judged by all its attempts (unknown if any may have applied)."""
    outcome = attempts.outcome(exc)
    return ClientOpError(outcome if outcome != "ok" else FAIL, type(exc).__name__, str(exc))


class _Ours:
    """What both of our clients do as a compared library: a write through call() (our retry policy),
    judged by all its attempts."""

    client: HAClient | ClusterClient

    def set(self, key: str, value: str) -> None:
        attempts = Attempts()
        try:
            self.client.call(lambda connection: connection.set(key, value), attempts)  # type: ignore[arg-type]
        except OPERATION_ERRORS as exc:
            raise _translate(exc, attempts) from exc

    def close(self) -> None:
        self.client.close()


class OursSentinel(_Ours):
    name, notes = OURS, ["the harness's HAClient: redis-py Sentinel with our retry policy; it follows "
                         "+switch-master from the sentinels (drops the old master's connections at once, and the "
                         "wait between two attempts ends there)"]

    def __init__(self, target: SentinelTarget, client_name: str):
        self.version = f"(on redis-py {package_version('redis')})"
        self.client = HAClient(target.sentinels, target.master_name, password=target.password,
                               sentinel_password=target.sentinel_password, client_name=client_name)
        self.client.remap = target.remap  # type: ignore[assignment] - the run's remap (compose names)
        self.client.sentinel.remap = target.remap  # type: ignore[attr-defined]
        self._discover = CallCounter().wrap(self.client.sentinel, "discover_master")
        self.client.master()

    def refreshes(self) -> int | None:
        return self._discover.count


class OursCluster(_Ours):
    name, notes = OURS, ["the harness's ClusterClient: redis-py RedisCluster with our retry and refresh policies: "
                         "the slot map is re-read off the request path (ROLE on the failed primary's replicas "
                         "every 2 ms, one re-read when one is promoted), and a retry waits for that instead of "
                         "a blind backoff (lib/clients/topology_refresh.py)"]

    def __init__(self, target: ClusterTarget, client_name: str):
        self.version = f"(on redis-py {package_version('redis')})"
        self.client = ClusterClient(target.seeds, password=target.password, host_map=target.host_map,
                                    client_name=client_name)
        self.client.cluster  # noqa: B018 - connect now: a bad seed fails the open, not the first write

    def refreshes(self) -> int | None:
        refresher = self.client.refresher
        return refresher.refreshes if refresher is not None else None


def open_sentinel(target: SentinelTarget, client_name: str) -> OursSentinel:
    return OursSentinel(target, client_name)


def open_cluster(target: ClusterTarget, client_name: str) -> OursCluster:
    return OursCluster(target, client_name)
