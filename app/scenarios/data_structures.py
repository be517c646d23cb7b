"""Hash, list, set and sorted set: the common commands' replies, and the encodings each server picks.

Replies are checked against the documented ones (a difference FAILs). Encodings are only recorded:
servers may choose differently (Redis 7.2 and Valkey store small string sets as listpack, Redis 7.0
as hashtable), and the diff shows where they do. Each type is built small and large, on both sides
of the default *-max-listpack-entries (128), so both encodings are seen.
"""

from __future__ import annotations

from typing import Any

from lib.checks.result import FAIL, OK, CheckResult
from lib.suites.scenario import result

NAME = "data_structures"
DESTRUCTIVE = False
LARGE = 1000  # elements: past every default listpack/intset limit (128, 512)

EXPECTED: dict[str, Any] = {
    "hset_new_fields": 3, "hset_update": 0, "hget": "v1b", "hget_missing": None,
    "hgetall": {"f1": "v1b", "f2": "v2", "n": "10"}, "hincrby": 15, "hdel": 1, "hlen": 2,
    "hexists": [True, False], "hmget": ["v1b", None], "hkeys": ["f1", "n"],
    "rpush": 5, "lpush": 6, "lrange_all": ["0", "1", "2", "3", "4", "5"], "lpop": "0", "rpop": "5",
    "lpop_count": ["1", "2"], "llen": 2, "lindex_out_of_range": None, "linsert": 3, "lpos": 2,
    "lrange_missing": [], "lpop_missing": None,
    "sadd": 3, "sadd_existing": 0, "smembers": ["a", "b", "c"], "sismember": [True, False],
    "smismember": [1, 0], "scard": 3, "srem": 1, "sinter": ["b"], "sunion_size": 4, "spop_missing": None,
    "zadd": 3, "zadd_update": 0, "zrange_withscores": [["a", 1.0], ["b", 2.5], ["c", 3.0]], "zscore": 2.5,
    "zscore_missing": None, "zincrby": 4.0, "zrank": 2, "zrevrange": ["a", "c", "b"],
    "zrangebyscore": ["b", "c", "a"], "zcard": 3, "zrem": 1, "zadd_gt_lower": 0, "zcount": 2,
}


def run(client, ctx) -> CheckResult:
    replies: dict[str, Any] = {}
    encodings: dict[str, str] = {}
    try:
        _hash(client, ctx, replies, encodings)
        _list(client, ctx, replies, encodings)
        _set(client, ctx, replies, encodings)
        _zset(client, ctx, replies, encodings)
    finally:
        ctx.cleanup(client)
    replies = {k: _plain(v) for k, v in replies.items()}
    mismatches = {k: {"got": replies.get(k), "expected": v} for k, v in EXPECTED.items() if replies.get(k) != v}
    metrics = {"replies": replies, "encodings": encodings, "mismatches": mismatches}
    shown = ", ".join(f"{k}={v}" for k, v in encodings.items())
    if mismatches:
        return result(NAME, FAIL, f"{len(mismatches)} replies differ from the documented ones: "
                                  f"{', '.join(mismatches)}; encodings {shown}", metrics)
    return result(NAME, OK, f"{len(EXPECTED)} replies as documented; encodings {shown}", metrics)


def _hash(client, ctx, replies: dict, encodings: dict) -> None:
    key = ctx.key("hash")
    replies["hset_new_fields"] = client.hset(key, mapping={"f1": "v1", "f2": "v2", "n": "10"})
    replies["hset_update"] = client.hset(key, "f1", "v1b")
    replies["hget"] = client.hget(key, "f1")
    replies["hget_missing"] = client.hget(key, "nope")
    replies["hgetall"] = client.hgetall(key)
    replies["hincrby"] = client.hincrby(key, "n", 5)
    replies["hdel"] = client.hdel(key, "f2", "nope")
    replies["hlen"] = client.hlen(key)
    replies["hexists"] = [client.hexists(key, "f1"), client.hexists(key, "f2")]
    replies["hmget"] = client.hmget(key, ["f1", "nope"])
    replies["hkeys"] = sorted(client.hkeys(key))
    encodings["hash_small"] = client.object("encoding", key)
    big = ctx.key("hash", "large")
    client.hset(big, mapping={f"field{i}": i for i in range(LARGE)})
    encodings["hash_large"] = client.object("encoding", big)


def _list(client, ctx, replies: dict, encodings: dict) -> None:
    key = ctx.key("list")
    replies["rpush"] = client.rpush(key, 1, 2, 3, 4, 5)
    replies["lpush"] = client.lpush(key, 0)
    replies["lrange_all"] = client.lrange(key, 0, -1)
    encodings["list_small"] = client.object("encoding", key)
    replies["lpop"] = client.lpop(key)
    replies["rpop"] = client.rpop(key)
    replies["lpop_count"] = client.lpop(key, 2)
    replies["llen"] = client.llen(key)
    replies["lindex_out_of_range"] = client.lindex(key, 99)
    replies["linsert"] = client.linsert(key, "BEFORE", "4", "x")
    replies["lpos"] = client.lpos(key, "4")
    replies["lrange_missing"] = client.lrange(ctx.key("nolist"), 0, -1)
    replies["lpop_missing"] = client.lpop(ctx.key("nolist"))
    big = ctx.key("list", "large")
    client.rpush(big, *[f"item-{i:06d}" for i in range(LARGE)])  # > list-max-listpack-size (8 KB)
    encodings["list_large"] = client.object("encoding", big)


def _set(client, ctx, replies: dict, encodings: dict) -> None:
    key, other = ctx.key("set"), ctx.key("set2")
    replies["sadd"] = client.sadd(key, "a", "b", "c")
    replies["sadd_existing"] = client.sadd(key, "a")
    replies["smembers"] = sorted(client.smembers(key))
    replies["sismember"] = [client.sismember(key, "a"), client.sismember(key, "z")]
    replies["smismember"] = client.smismember(key, ["a", "z"])
    replies["scard"] = client.scard(key)
    encodings["set_small_strings"] = client.object("encoding", key)
    client.sadd(other, "b", "c", "d")
    replies["srem"] = client.srem(key, "c", "nope")
    replies["sinter"] = sorted(client.sinter(key, other))
    replies["sunion_size"] = len(client.sunion(key, other))
    replies["spop_missing"] = client.spop(ctx.key("noset"))
    ints = ctx.key("set", "ints")
    client.sadd(ints, *range(10))
    encodings["set_small_ints"] = client.object("encoding", ints)
    big = ctx.key("set", "large")
    client.sadd(big, *[f"member{i}" for i in range(LARGE)])
    encodings["set_large"] = client.object("encoding", big)


def _zset(client, ctx, replies: dict, encodings: dict) -> None:
    key = ctx.key("zset")
    replies["zadd"] = client.zadd(key, {"a": 1, "b": 2.5, "c": 3})
    replies["zadd_update"] = client.zadd(key, {"a": 1})
    replies["zrange_withscores"] = client.zrange(key, 0, -1, withscores=True)
    replies["zscore"] = client.zscore(key, "b")
    replies["zscore_missing"] = client.zscore(key, "nope")
    encodings["zset_small"] = client.object("encoding", key)
    replies["zincrby"] = client.zincrby(key, 3, "a")
    replies["zrank"] = client.zrank(key, "a")
    replies["zrevrange"] = client.zrevrange(key, 0, -1)
    replies["zrangebyscore"] = client.zrangebyscore(key, 2, 5)
    replies["zcount"] = client.zcount(key, 3, "+inf")
    replies["zcard"] = client.zcard(key)
    replies["zrem"] = client.zrem(key, "c", "nope")
    replies["zadd_gt_lower"] = client.zadd(key, {"a": 0}, gt=True)
    big = ctx.key("zset", "large")
    client.zadd(big, {f"member{i}": i for i in range(LARGE)})
    encodings["zset_large"] = client.object("encoding", big)


def _plain(value: Any) -> Any:
    """Tuples as lists, so replies compare equal to EXPECTED and to what the JSON file holds."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
