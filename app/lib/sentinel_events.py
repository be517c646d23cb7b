"""Record what the sentinels announce (+sdown, +odown, +switch-master, ...) into a history."""

from __future__ import annotations

import threading

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from lib.workload import History

INTERESTING = ("+sdown", "-sdown", "+odown", "+try-failover", "+elected-leader", "+selected-slave",
               "+promoted-slave", "+switch-master", "+convert-to-slave", "+slave", "+reboot")


class SentinelEvents(threading.Thread):
    """Subscribes to every sentinel's event channels; the first sighting of each event is what counts."""

    def __init__(self, sentinels: list[tuple[str, int]], history: History, password: str | None = None):
        super().__init__(daemon=True, name="sentinel-events")
        self.history = history
        self._halt = threading.Event()
        self._pubsubs = []
        for host, port in sentinels:
            client = redis.Redis(host=host, port=port, password=password, socket_connect_timeout=1.0,
                                 decode_responses=True, retry=Retry(NoBackoff(), 0))
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(*INTERESTING)
                self._pubsubs.append(pubsub)
            except redis.RedisError:
                pubsub.close()  # an unreachable sentinel just contributes no events
        self.ready = bool(self._pubsubs)

    def run(self) -> None:
        while not self._halt.is_set():
            for pubsub in self._pubsubs:
                try:
                    message = pubsub.get_message(timeout=0.01)
                except redis.RedisError:
                    continue
                if message and message.get("type") == "message":
                    self.history.event(message["channel"], message["data"])

    def stop(self) -> None:
        self._halt.set()
        self.join(5)
        for pubsub in self._pubsubs:
            pubsub.close()
