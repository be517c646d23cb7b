"""An independent probe: a plain client that finds the master and writes every ~5 ms, no backoff.

It shares nothing with the harness client, so the downtime it sees is the yardstick for ours.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from lib.clients.kept_clients import KeptClients
from lib.history import FAIL, OK, PLAIN, PROBE, History, Op

Address = tuple[str, int]


def plain_client(address: Address, password: str | None, timeout: float = 0.2) -> redis.Redis:
    """One node, one attempt per call: no retries, no backoff."""
    return redis.Redis(host=address[0], port=address[1], password=password, socket_timeout=timeout,
                       socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0), decode_responses=True)


class SentinelProbe(threading.Thread):
    def __init__(self, sentinels: list[Address], master_name: str, remap: Callable[[Address], Address],
                 key: str, history: History, *, password: str | None = None, sentinel_password: str | None = None,
                 interval_s: float = 0.005, process: str = PROBE):
        super().__init__(daemon=True, name="probe")
        self.sentinels = [plain_client(a, sentinel_password) for a in sentinels]
        self.master_name, self.remap, self.key, self.password = master_name, remap, key, password
        self.interval_s, self.process = interval_s, process
        self.history = history
        self._nodes = KeptClients(lambda address: plain_client(address, self.password))  # one per master seen
        self._halt = threading.Event()

    def _master(self) -> Address:
        for sentinel in self.sentinels:
            try:
                reply = sentinel.sentinel_get_master_addr_by_name(self.master_name)
            except redis.RedisError:
                continue
            if reply:
                return self.remap((reply[0], int(reply[1])))
        raise redis.ConnectionError("no sentinel answered")

    def run(self) -> None:
        seq = 0
        while not self._halt.is_set():
            start = time.monotonic()
            try:
                address = self._master()
                self._nodes[address].set(self.key, seq)
                self.history.record(Op(seq, self.key, start, time.monotonic(), OK, process=self.process))
            except redis.RedisError as exc:
                self.history.record(Op(seq, self.key, start, time.monotonic(), FAIL, type(exc).__name__,
                                       process=self.process))
            seq += 1
            self._halt.wait(self.interval_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)
        for client in self.sentinels:
            client.close()
        self._nodes.close()


class PlainClientProbe(threading.Thread):
    """A plain redis-py client with its default settings writing every ~5 ms: the yardstick for our
    client's recovery (ours must never be behind what a user gets without the harness's wrappers)."""

    def __init__(self, write: Callable[[int], object], close: Callable[[], object], history: History, *,
                 key: str = "plain", interval_s: float = 0.005, group: str | None = None, process: str = PLAIN):
        super().__init__(daemon=True, name="plain-client-probe")
        self.write, self.close, self.key, self.group = write, close, key, group
        self.interval_s, self.process = interval_s, process
        self.history = history
        self._halt = threading.Event()

    def run(self) -> None:
        seq = 0
        while not self._halt.is_set():
            start = time.monotonic()
            try:
                self.write(seq)
                self.history.record(Op(seq, self.key, start, time.monotonic(), OK, group=self.group,
                                       process=self.process))
            except (redis.RedisError, OSError) as exc:
                self.history.record(Op(seq, self.key, start, time.monotonic(), FAIL, type(exc).__name__,
                                       group=self.group, process=self.process))
            seq += 1
            self._halt.wait(self.interval_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(30)  # a default client may sit in its own retries; it finishes them
        with contextlib.suppress(redis.RedisError):
            self.close()
