"""maxmemory + allkeys-lru: write ~1 MB bigkey:N values until the server evicts, then restore the config.

DESTRUCTIVE: it changes maxmemory and the eviction policy, and under allkeys-lru the server may
evict *any* key, not only ours. So it runs only on targets the harness started (or with
--allow-destructive), and the original maxmemory and policy are put back in a finally block,
whatever happened, and read back with CONFIG GET to prove it.
"""

from __future__ import annotations

from typing import Any

import redis

from lib.report import FAIL, OK, WARN
from lib.scenario import result

NAME = "memory_eviction"
DESTRUCTIVE = True
VALUE_BYTES = 1_000_000
HEADROOM_VALUES = 8  # maxmemory = used_memory now + room for about this many values
MAX_WRITES = 40
EVICTIONS_WANTED = 3  # a few evictions, to see which keys LRU picks
POLICY = "allkeys-lru"
SETTINGS = ("maxmemory", "maxmemory-policy")


def run(client, ctx) -> dict:
    original = {name: client.config_get(name)[name] for name in SETTINGS}
    metrics: dict[str, Any] = {"original": original}
    try:
        _fill_until_eviction(client, ctx, metrics)
    finally:
        try:
            ctx.cleanup(client)
        finally:
            for name in SETTINGS:
                client.config_set(name, original[name])
            after = {name: client.config_get(name)[name] for name in SETTINGS}
            metrics["restored"] = after == original
            metrics["after_restore"] = after
    if not metrics["restored"]:
        return result(NAME, FAIL, f"config not restored: {metrics['after_restore']} instead of {original}", metrics)
    written, evicted = metrics["keys_written"], metrics["evicted_count"]
    summary = (f"maxmemory {metrics['maxmemory_bytes'] / 1e6:.1f} MB {POLICY}: wrote {written} x 1 MB, "
               f"{evicted} evicted, {len(metrics['survivors'])} survived (last written "
               f"{'kept' if metrics['last_written_survived'] else 'EVICTED'}); config restored")
    if evicted == 0:
        return result(NAME, WARN, f"no eviction after {written} writes: {summary}", metrics)
    if not metrics["last_written_survived"]:
        return result(NAME, FAIL, f"LRU evicted the key written last: {summary}", metrics)
    return result(NAME, OK, summary, metrics)


def _fill_until_eviction(client, ctx, metrics: dict[str, Any]) -> None:
    used = client.info("memory")["used_memory"]
    limit = used + HEADROOM_VALUES * VALUE_BYTES
    client.config_set("maxmemory", limit)
    client.config_set("maxmemory-policy", POLICY)
    evicted_at_start = client.info("stats")["evicted_keys"]
    metrics.update(maxmemory_bytes=limit, used_memory_at_start=used, keys_before=client.dbsize(),
                   mem_allocator=client.info("memory").get("mem_allocator"))
    payload = "x" * VALUE_BYTES
    samples, oom_errors, written = [], [], []
    for n in range(MAX_WRITES):
        try:
            client.set(ctx.key("bigkey", n), payload)
            written.append(n)
        except redis.ResponseError as exc:  # OOM: the server could not free enough for this write
            oom_errors.append(f"bigkey:{n}: {exc}")
        samples.append(client.info("memory")["used_memory"])
        if client.info("stats")["evicted_keys"] - evicted_at_start >= EVICTIONS_WANTED:
            break
    survivors = [n for n in range(MAX_WRITES) if client.exists(ctx.key("bigkey", n))]
    evicted = client.info("stats")["evicted_keys"] - evicted_at_start
    evicted_keys = sorted(set(written) - set(survivors))
    metrics.update(keys_written=len(written), keys_after=client.dbsize(), evicted_count=evicted,
                   memory_samples=samples, peak_used_memory=max(samples, default=used),
                   survivors=survivors, evicted_keys=evicted_keys,
                   evicted_oldest_first=evicted_keys == list(range(len(evicted_keys))),
                   last_written_survived=bool(written) and written[-1] in survivors, oom_errors=oom_errors)
