"""Record what the sentinels announce (+sdown, +odown, +switch-master, ...) into a history."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from redis.backoff import AbstractBackoff, ExponentialBackoff, NoBackoff
from redis.retry import Retry

from lib import events
from lib.history import History

INTERESTING = events.SENTINEL_EVENTS
READ_TIMEOUT_S = 0.01  # how long one read waits for a message on a reachable sentinel
# A sentinel that is down fails every read at once; without a pause the loop would spin a core for
# as long as it is down. Retry it on this schedule (20 ms doubling to 0.5 s): a sentinel that comes
# back is read again within half a second, and its events while it was down are lost either way.
DOWN_BACKOFF = ExponentialBackoff(cap=0.5, base=0.01)
MAX_COUNTED_FAILURES = 30  # 2**failures stays a float however long a sentinel is down


@dataclass
class _Subscription:
    pubsub: redis.client.PubSub
    failures: int = 0
    retry_at: float = 0.0


class SentinelEvents(threading.Thread):
    """Subscribes to every sentinel's event channels; the first sighting of each event is what counts."""

    def __init__(self, sentinels: list[tuple[str, int]], history: History, password: str | None = None, *,
                 backoff: AbstractBackoff = DOWN_BACKOFF, clock: Callable[[], float] = time.monotonic):
        super().__init__(daemon=True, name="sentinel-events")
        self.history = history
        self.backoff, self.clock = backoff, clock
        self._halt = threading.Event()
        self._clients: list[redis.Redis] = []
        self._subscriptions: list[_Subscription] = []
        for host, port in sentinels:
            client = redis.Redis(host=host, port=port, password=password, socket_connect_timeout=1.0,
                                 decode_responses=True, retry=Retry(NoBackoff(), 0))
            self._clients.append(client)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(*INTERESTING)
                self._subscriptions.append(_Subscription(pubsub))
            except redis.RedisError:
                pubsub.close()  # an unreachable sentinel just contributes no events
        self.ready = bool(self._subscriptions)

    def poll_once(self) -> float:
        """Read one message from each sentinel that is due; return how long to wait before the next round."""
        now = self.clock()
        for sub in self._subscriptions:
            if sub.retry_at > now:
                continue
            try:
                message = sub.pubsub.get_message(timeout=READ_TIMEOUT_S)
            except redis.RedisError:
                sub.failures = min(sub.failures + 1, MAX_COUNTED_FAILURES)
                sub.retry_at = self.clock() + self.backoff.compute(sub.failures)
                continue
            sub.failures = 0
            if message and message.get("type") == "message":
                self.history.event(message["channel"], message["data"])
        if any(sub.failures == 0 for sub in self._subscriptions):
            return 0.0  # a reachable sentinel's read already waited READ_TIMEOUT_S
        due = min((sub.retry_at for sub in self._subscriptions),
                  default=now + self.backoff.compute(MAX_COUNTED_FAILURES))  # none reachable at start
        return max(0.0, due - self.clock())

    def run(self) -> None:
        while not self._halt.is_set():
            pause = self.poll_once()
            if pause:
                self._halt.wait(pause)

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(5)
        for sub in self._subscriptions:
            sub.pubsub.close()
        for client in self._clients:
            client.close()
