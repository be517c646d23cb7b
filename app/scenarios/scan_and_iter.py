"""SCAN, HSCAN, SSCAN and ZSCAN over small and large collections, with several COUNT values.

SCAN promises that every element present for the whole iteration is returned at least once, and
allows duplicates: a missing element FAILs, duplicates are counted. How many cursor steps each
server needs depends on its hash-table sizing and encodings, so steps are recorded for the diff
(a small listpack collection is returned in one step whatever COUNT says).
"""

from __future__ import annotations

from typing import Any

from lib.checks.result import FAIL, OK, CheckResult
from lib.suites.scenario import raw_command, result

NAME = "scan_and_iter"
DESTRUCTIVE = False
KEYS = 2000
SMALL, LARGE = 50, 3000
COUNTS = (10, 100, 1000)
MAX_STEPS = 100_000  # a cursor that never returns to 0 is a bug, not a reason to hang


def run(client, ctx) -> CheckResult:
    metrics: dict[str, Any] = {}
    try:
        key_names = _fill(client, ctx)
        metrics["scan"] = {f"count_{c}": _iterate(client, ("SCAN",), key_names, c, 1,
                                                  match=ctx.prefix + "k:*") for c in COUNTS}
        for command, kind, width in (("HSCAN", "hash", 2), ("SSCAN", "set", 1), ("ZSCAN", "zset", 2)):
            for size in ("small", "large"):
                key = ctx.key(kind, size)
                members = _members(kind, SMALL if size == "small" else LARGE)
                entry: dict[str, Any] = {"encoding": client.object("encoding", key)}
                for count in COUNTS[:2]:
                    entry[f"count_{count}"] = _iterate(client, (command, key), members, count, width)
                metrics.setdefault(command.lower(), {})[size] = entry
    finally:
        ctx.cleanup(client)
    runs = [(f"{cmd}.{path}", r) for cmd, body in metrics.items() for path, r in _runs(body)]
    missing = {name: r["missing"] for name, r in runs if r["missing"]}
    duplicates = sum(r["duplicates"] for _, r in runs)
    metrics["iterations"] = len(runs)
    metrics["duplicates_total"] = duplicates
    if missing:
        return result(NAME, FAIL, f"elements never returned: {missing}", metrics)
    return result(NAME, OK, f"{len(runs)} full iterations, every element seen; {duplicates} duplicates "
                            f"(allowed by SCAN)", metrics)


def _fill(client, ctx) -> set[str]:
    """KEYS string keys, and a small and a large hash, set and sorted set."""
    names = {ctx.key("k", i) for i in range(KEYS)}
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.set(name, "1")
    for size, count in (("small", SMALL), ("large", LARGE)):
        pipe.hset(ctx.key("hash", size), mapping={m: "v" for m in _members("hash", count)})
        pipe.sadd(ctx.key("set", size), *_members("set", count))
        pipe.zadd(ctx.key("zset", size), {m: i for i, m in enumerate(_members("zset", count))})
    pipe.execute()
    return names


def _members(kind: str, count: int) -> set[str]:
    return {f"{kind}-member-{i}" for i in range(count)}


def _iterate(client, command: tuple[str, ...], expected: set[str], count: int, width: int,
             match: str | None = None) -> dict[str, int]:
    """Follow the cursor from 0 back to 0; width 2 when replies interleave member and value/score."""
    cursor, steps, seen, returned = "0", 0, set(), 0
    extra = ("MATCH", match) if match else ()
    while True:
        cursor, batch = raw_command(client, *command, cursor, *extra, "COUNT", count)
        steps += 1
        names = batch[::width]
        returned += len(names)
        seen.update(names)
        if str(cursor) == "0" or steps >= MAX_STEPS:
            break
    return {"steps": steps, "returned": returned, "seen": len(seen & expected),
            "duplicates": returned - len(seen), "missing": len(expected - seen),
            "unexpected": len(seen - expected)}


def _runs(body: dict[str, Any], prefix: str = ""):
    """(path, iteration result) pairs in a nested metrics dict."""
    for key, value in body.items():
        if isinstance(value, dict) and "steps" in value:
            yield prefix + key, value
        elif isinstance(value, dict):
            yield from _runs(value, f"{prefix}{key}.")
