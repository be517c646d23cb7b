"""The verdict on a cache run, read from its recorded requests afterwards (a checker, like lib/checks/checker.py).

Per shard: when did the cache stop answering, when did the client reach it again, and when did
hits return. Measured on the request sequence of one shard (one loop per shard, so its requests
are ordered): the first HIT after the last store error, not the first HIT after the fault
(a request in flight at the fault may still hit).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from lib.history import OK, Op
from lib.workload.http_requests import CACHE_ERROR, cache_of, status_of


@dataclass
class ShardRecovery:
    shard: str
    requests: int
    cache_errors: int  # after the fault
    first_error_at: float | None
    last_error_at: float | None
    client_recovered_at: float | None  # first request after the last error whose store call worked
    hits_returned_at: float | None  # first HIT after the last error (None: errors, and no HIT since)


def shard_recovery(shard: str, ops: list[Op], fault_at: float) -> ShardRecovery:
    ops = sorted((op for op in ops if op.group == shard), key=lambda op: op.start)
    errors = [op for op in ops if cache_of(op) == CACHE_ERROR and op.end >= fault_at]
    if not errors:
        return ShardRecovery(shard, len(ops), 0, None, None, None, None)
    last = errors[-1]
    after = [op for op in ops if op.start > last.start]
    recovered = next((op.end for op in after if cache_of(op) in ("HIT", "MISS")), None)
    hits = next((op.end for op in after if cache_of(op) == "HIT"), None)
    return ShardRecovery(shard, len(ops), len(errors), errors[0].end, last.end, recovered, hits)


RATE_WINDOW_S = 3.0  # the healthy shards' rate before the fault is measured over at most this long


def rate_kept(ops: list[Op], shard: str, fault_at: float, until: float) -> dict:
    """A healthy shard's answered requests per second before the fault and during the outage [fault, until].

    The goal (issue 14): a shard that lost nothing keeps >= 95% of its rate while another shard is out.
    """
    mine = [op for op in ops if op.group == shard]
    first = min((op.end for op in mine), default=fault_at)
    start = max(fault_at - RATE_WINDOW_S, first)
    before = sum(1 for op in mine if start <= op.end < fault_at) / (fault_at - start) if fault_at > start else None
    during = sum(1 for op in mine if fault_at <= op.end < until) / (until - fault_at) if until > fault_at else None
    kept = round(100 * during / before, 1) if before and during is not None else None
    return {"before_per_s": None if before is None else round(before, 1),
            "during_per_s": None if during is None else round(during, 1), "kept_pct": kept}


@dataclass
class RequestTotals:
    requests: int
    hits: int
    misses: int
    cache_errors: int  # requests the store failed on (served by the app)
    http_5xx: int
    http_failed: int  # no response at all (refused, reset, timeout)
    errors_by_type: dict[str, int]
    slowest_ms: float  # the longest request: a failing store must not hang the page

    @property
    def hit_ratio(self) -> float:
        return self.hits / self.requests if self.requests else 0.0

    def to_dict(self) -> dict:
        return {"requests": self.requests, "hits": self.hits, "misses": self.misses,
                "hit_ratio": round(self.hit_ratio, 4), "cache_errors": self.cache_errors,
                "http_5xx": self.http_5xx, "http_failed": self.http_failed, "errors_by_type": self.errors_by_type,
                "slowest_request_ms": round(self.slowest_ms, 1)}


def request_totals(ops: list[Op]) -> RequestTotals:
    by_cache = Counter(cache_of(op) for op in ops)
    return RequestTotals(
        requests=len(ops), hits=by_cache["HIT"], misses=by_cache["MISS"], cache_errors=by_cache[CACHE_ERROR],
        http_5xx=sum(1 for op in ops if (status_of(op) or 0) >= 500),
        http_failed=sum(1 for op in ops if status_of(op) is None),
        errors_by_type=dict(Counter(_error_kind(op.error) for op in ops if op.error)),
        slowest_ms=max(((op.end - op.start) * 1000 for op in ops), default=0.0))


def _error_kind(error: str) -> str:
    """'cache: ConnectionError' as it is; 'HTTP ConnectionRefusedError: [Errno 111] ...' without the detail."""
    return error if error.startswith("cache: ") else error.split(":")[0]


def ok_count(ops: list[Op], shard: str, after: float, cache: str | None = None) -> int:
    """Requests of shard that started after `after` and got a response (optionally: with this cache result)."""
    return sum(1 for op in ops if op.group == shard and op.start > after and op.outcome == OK
               and (cache is None or cache_of(op) == cache))
