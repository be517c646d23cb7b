"""maxmemory + allkeys-lru: write ~1 MB bigkey:N values until the server evicts, then restore the config.

DESTRUCTIVE: it changes maxmemory and the eviction policy, and under allkeys-lru the server may
evict *any* key, not only ours. So it runs only on targets the harness started (or with
--allow-destructive), and the original maxmemory and policy are put back in a finally block,
whatever happened, and read back with CONFIG GET to prove it. Keys of others that were evicted
cannot be put back: they are counted and the result says so (WARN with the count).
"""

from __future__ import annotations

from typing import Any

import redis

from lib.checks.result import FAIL, OK, WARN, CheckResult
from lib.suites.scenario import result

NAME = "memory_eviction"
DESTRUCTIVE = True
VALUE_BYTES = 1_000_000
HEADROOM_VALUES = 8  # maxmemory = used_memory now + room for about this many values
MAX_WRITES = 40
EVICTIONS_WANTED = 3  # a few evictions, to see which keys LRU picks
POLICY = "allkeys-lru"
SETTINGS = ("maxmemory", "maxmemory-policy")


def run(client, ctx) -> CheckResult:
    original = {name: client.config_get(name)[name] for name in SETTINGS}
    written: list[int] = []
    metrics: dict[str, Any] = {"original": original, "keys_in_all_dbs_before": keys_in_all_dbs(client)}
    evicted_at_start = client.info("stats")["evicted_keys"]
    ours_left = 0
    try:
        _fill_until_eviction(client, ctx, metrics, written)
    finally:
        try:
            ours_left = ctx.cleanup(client)
        finally:
            for name in SETTINGS:
                client.config_set(name, original[name])
            after = {name: client.config_get(name)[name] for name in SETTINGS}
            metrics["restored"] = after == original
            metrics["after_restore"] = after
            # Every eviction the server made while our limit was set, minus our own keys that were
            # gone at cleanup (nobody else deletes keys under our prefix): the rest were someone else's.
            evicted_in_window = client.info("stats")["evicted_keys"] - evicted_at_start
            metrics["others_keys_evicted"] = max(0, evicted_in_window - (len(written) - ours_left))
    if not metrics["restored"]:
        return result(NAME, FAIL, f"config not restored: {metrics['after_restore']} instead of {original}", metrics)
    written_count, evicted = metrics["keys_written"], metrics["evicted_count"]
    summary = (f"maxmemory {metrics['maxmemory_bytes'] / 1e6:.1f} MB {POLICY}: wrote {written_count} x 1 MB, "
               f"{evicted} evicted, {len(metrics['survivors'])} survived (last written "
               f"{'kept' if metrics['last_written_survived'] else 'EVICTED'}); config restored")
    if evicted == 0:
        return result(NAME, WARN, f"no eviction after {written_count} writes: {summary}", metrics)
    if not metrics["last_written_survived"]:
        return result(NAME, FAIL, f"LRU evicted the key written last: {summary}", metrics)
    if others := metrics["others_keys_evicted"]:
        return result(NAME, WARN, f"{others} key(s) the harness did not create were evicted (of "
                      f"{metrics['keys_in_all_dbs_before']} in all databases before; they cannot be put back): "
                      f"{summary}", metrics)
    return result(NAME, OK, summary, metrics)


def keys_in_all_dbs(client) -> int:
    """Keys in every database (INFO keyspace): allkeys-lru evicts from all of them, not only ours."""
    return sum(int(db.get("keys", 0)) for name, db in client.info("keyspace").items() if name.startswith("db"))


def _fill_until_eviction(client, ctx, metrics: dict[str, Any], written: list[int]) -> None:
    """Write bigkey:N until a few evictions; written gets each N as it is acknowledged."""
    used = client.info("memory")["used_memory"]
    limit = used + HEADROOM_VALUES * VALUE_BYTES
    client.config_set("maxmemory", limit)
    client.config_set("maxmemory-policy", POLICY)
    evicted_at_start = client.info("stats")["evicted_keys"]
    metrics.update(maxmemory_bytes=limit, used_memory_at_start=used, keys_before=client.dbsize(),
                   mem_allocator=client.info("memory").get("mem_allocator"))
    payload = "x" * VALUE_BYTES
    samples, oom_errors = [], []
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
