"""SET, GET, EXISTS, EXPIRE, TTL, DEL and their edge answers (missing key, TTL -1 and -2, options).

Each reply is compared with what the Redis documentation promises; a different reply FAILs. The
replies themselves go into the metrics, so the diff shows any difference between servers too.
"""

from __future__ import annotations

import time
from typing import Any

from lib.checks.result import FAIL, OK, CheckResult
from lib.suites.scenario import error_reply, result
from lib.waits import wait_until

NAME = "basic_crud"
DESTRUCTIVE = False
EXPIRY_PX = 150
EXPIRY_DEADLINE_S = 5.0

EXPECTED: dict[str, Any] = {
    "set": True, "get": "v1", "get_missing": None, "set_nx_existing": None, "set_xx_missing": None,
    "set_get_option": "v1", "get_after_set_get": "v2", "exists_counts_repeats": 2, "exists_missing": 0,
    "ttl_no_expire": -1, "ttl_missing": -2, "pttl_missing": -2, "expire": True, "ttl_within_expire": True,
    "expire_missing": False, "expire_nx_when_set": False, "expire_gt_longer": True, "persist": True,
    "ttl_after_persist": -1, "persist_again": False, "pexpire": True, "get_after_expiry": None,
    "ttl_after_expiry": -2, "incr_new": 1, "incrby": 11, "incr_not_integer": "ResponseError",
    "append_length": 5, "strlen": 5, "getrange": "ell", "mset": True, "mget": ["a", None, "b"],
    "del_counts_existing": 2, "del_missing": 0, "type_string": "string", "type_missing": "none",
    "set_ex_ttl": True,
}


def run(client, ctx) -> CheckResult:
    key, other, missing = ctx.key("k"), ctx.key("other"), ctx.key("missing")
    replies: dict[str, Any] = {}
    try:
        replies["set"] = client.set(key, "v1")
        replies["get"] = client.get(key)
        replies["get_missing"] = client.get(missing)
        replies["set_nx_existing"] = client.set(key, "x", nx=True)
        replies["set_xx_missing"] = client.set(missing, "x", xx=True)
        replies["set_get_option"] = client.set(key, "v2", get=True)
        replies["get_after_set_get"] = client.get(key)
        replies["exists_counts_repeats"] = client.exists(key, missing, key)
        replies["exists_missing"] = client.exists(missing)
        replies["ttl_no_expire"] = client.ttl(key)
        replies["ttl_missing"] = client.ttl(missing)
        replies["pttl_missing"] = client.pttl(missing)
        replies["expire"] = client.expire(key, 100)
        replies["ttl_within_expire"] = 0 < client.ttl(key) <= 100
        replies["expire_missing"] = client.expire(missing, 100)
        replies["expire_nx_when_set"] = client.expire(key, 50, nx=True)
        replies["expire_gt_longer"] = client.expire(key, 200, gt=True)
        replies["persist"] = client.persist(key)
        replies["ttl_after_persist"] = client.ttl(key)
        replies["persist_again"] = client.persist(key)
        replies["set_ex_ttl"] = client.set(other, "o", ex=30) and 0 < client.ttl(other) <= 30
        replies["pexpire"] = client.pexpire(key, EXPIRY_PX)
        expiry_ms = _wait_expired(client, key)
        replies["get_after_expiry"] = client.get(key)
        replies["ttl_after_expiry"] = client.ttl(key)
        counter = ctx.key("counter")
        replies["incr_new"] = client.incr(counter)
        replies["incrby"] = client.incrby(counter, 10)
        replies["incr_not_integer"] = error_reply(lambda: client.incr(other)).split(":")[0]
        replies["append_length"] = client.append(ctx.key("app"), "hello")
        replies["strlen"] = client.strlen(ctx.key("app"))
        replies["getrange"] = client.getrange(ctx.key("app"), 1, 3)
        replies["mset"] = client.mset({ctx.key("m1"): "a", ctx.key("m2"): "b"})
        replies["mget"] = client.mget(ctx.key("m1"), missing, ctx.key("m2"))
        replies["type_string"] = client.type(other)
        replies["type_missing"] = client.type(missing)
        replies["del_counts_existing"] = client.delete(ctx.key("m1"), ctx.key("m2"), missing)
        replies["del_missing"] = client.delete(missing)
    finally:
        ctx.cleanup(client)
    mismatches = {k: {"got": replies.get(k), "expected": v} for k, v in EXPECTED.items() if replies.get(k) != v}
    metrics = {"replies": replies, "mismatches": mismatches, "expiry_ms": expiry_ms,
               "expiry_px": EXPIRY_PX}
    if mismatches:
        return result(NAME, FAIL, f"{len(mismatches)} of {len(EXPECTED)} replies differ from the documented "
                                  f"ones: {', '.join(mismatches)}", metrics)
    return result(NAME, OK, f"{len(EXPECTED)} replies as documented; a PX {EXPIRY_PX} key was gone "
                            f"after {expiry_ms:.0f} ms", metrics)


def _wait_expired(client, key: str) -> float:
    """Time from PEXPIRE until the key reads as gone, polled with a deadline (no fixed sleep)."""
    start = time.perf_counter()
    wait_until(lambda: (client.exists(key) == 0, f"pttl {client.pttl(key)} ms"), timeout=EXPIRY_DEADLINE_S,
               what=f"{key} to expire (PEXPIRE {EXPIRY_PX})")
    return round((time.perf_counter() - start) * 1000, 1)
