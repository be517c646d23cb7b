"""PUBLISH to SUBSCRIBE and PSUBSCRIBE (and sharded SPUBLISH/SSUBSCRIBE): delivered vs published.

A second connection subscribes; messages are received with get_message(timeout=...) until all
have arrived or a deadline passes, never after a fixed sleep. Fewer delivered than published, or
out of order on one channel, FAILs. Channels are named under the scenario's prefix: pub/sub has no
keys to clean up, only subscriptions, which closing the connection ends.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from lib.checks.result import FAIL, OK, CheckResult
from lib.suites.scenario import result

NAME = "pubsub"
DESTRUCTIVE = False
MESSAGES = 200
PATTERN_CHANNELS = 4
DEADLINE_S = 10.0
POLL_S = 0.5


def run(client, ctx) -> CheckResult:
    channel, pattern = ctx.key("news"), ctx.key("events.*")
    subscriber = ctx.new_client().pubsub()
    metrics: dict[str, Any] = {"published": MESSAGES, "published_pattern": MESSAGES}
    try:
        subscriber.subscribe(channel)
        subscriber.psubscribe(pattern)
        metrics["confirmations"] = _receive(subscriber, 2, {"subscribe", "psubscribe"})[0]
        metrics["numsub_while_subscribed"] = dict(client.pubsub_numsub(channel)).get(channel)
        start = time.perf_counter()
        metrics["receivers_channel"] = sum(client.publish(channel, f"m{i}") for i in range(MESSAGES))
        metrics["receivers_pattern"] = sum(client.publish(ctx.key(f"events.{i % PATTERN_CHANNELS}"), f"p{i}")
                                           for i in range(MESSAGES))
        metrics["receivers_nobody"] = client.publish(ctx.key("nobody-listens"), "x")
        count, messages = _receive(subscriber, 2 * MESSAGES, {"message", "pmessage"})
        metrics["delivery_ms"] = round((time.perf_counter() - start) * 1000, 1)
        plain = [m["data"] for m in messages if m["type"] == "message"]
        patterned = [m for m in messages if m["type"] == "pmessage"]
        metrics["delivered"] = len(plain)
        metrics["delivered_pattern"] = len(patterned)
        metrics["in_order"] = plain == [f"m{i}" for i in range(len(plain))]
        metrics["pattern_field_correct"] = all(m["pattern"] == pattern for m in patterned)
        subscriber.unsubscribe(channel)
        subscriber.punsubscribe(pattern)
        _receive(subscriber, 2, {"unsubscribe", "punsubscribe"})
        metrics["numsub_after_unsubscribe"] = dict(client.pubsub_numsub(channel)).get(channel)
    finally:
        subscriber.close()
    metrics["sharded"] = _sharded(client, ctx)
    lost = 2 * MESSAGES - metrics["delivered"] - metrics["delivered_pattern"]
    metrics["lost"] = lost
    sharded_lost = metrics["sharded"].get("published", 0) - metrics["sharded"].get("delivered", 0)
    problems = [f"{lost} messages not delivered" if lost else "",
                "" if metrics["in_order"] else "channel messages out of order",
                "" if metrics["pattern_field_correct"] else "pmessage with a wrong pattern field",
                f"{sharded_lost} sharded messages not delivered" if sharded_lost else ""]
    problems = [p for p in problems if p]
    summary = (f"{metrics['delivered']}/{MESSAGES} channel, {metrics['delivered_pattern']}/{MESSAGES} pattern, "
               f"{metrics['sharded'].get('delivered', 'n/a')}/{metrics['sharded'].get('published', 'n/a')} sharded "
               f"messages in {metrics['delivery_ms']:.0f} ms")
    if problems:
        return result(NAME, FAIL, f"{'; '.join(problems)} ({summary})", metrics)
    return result(NAME, OK, summary, metrics)


def _receive(pubsub, want: int, types: set[str]) -> tuple[int, list[dict]]:
    """Up to `want` messages of the given types, each awaited with get_message(timeout), one deadline."""
    received: list[dict] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(received) < want and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=POLL_S)
        if message and message["type"] in types:
            received.append(message)
    return len(received), received


def _sharded(client, ctx) -> dict[str, Any]:
    """SPUBLISH/SSUBSCRIBE (Redis 7.0+); a server without them gets its error recorded, not a crash."""
    channel = ctx.key("sharded")
    subscriber = ctx.new_client().pubsub()
    try:
        subscriber.ssubscribe(channel)
        deadline = time.monotonic() + DEADLINE_S
        confirmed = None
        while confirmed is None and time.monotonic() < deadline:
            confirmed = subscriber.get_sharded_message(timeout=POLL_S)
        receivers = sum(client.spublish(channel, f"s{i}") for i in range(MESSAGES // 4))
        delivered = 0
        while delivered < MESSAGES // 4 and time.monotonic() < deadline:
            message = subscriber.get_sharded_message(timeout=POLL_S)
            if message and message["type"] == "smessage":
                delivered += 1
        return {"published": MESSAGES // 4, "receivers": receivers, "delivered": delivered}
    except redis.ResponseError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        subscriber.close()
