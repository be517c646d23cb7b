"""An HTTP client loop over a fixed URL set, recording every request in a History (Jepsen-style).

Each request is an Op: ok (any response below 500), fail (a 5xx, or the server refused us) or
unknown (timed out: we cannot tell what the server did). What the cache did for it (HIT, MISS,
ERROR = the store failed and the app answered) is kept beside it in CacheOp.cache.
"""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from lib.history import FAIL, OK, UNKNOWN, History, Op
from lib.workload.http_cache import CACHE_HEADER, ERROR_HEADER
from lib.workload.workload import OpLoop

CACHE_ERROR = "ERROR"  # X-Cache: MISS with X-Cache-Error set: the store failed, the app served it


@dataclass
class CacheOp(Op):
    """One HTTP request: Op's fields (key = the path, group = its cache shard) plus what the cache did."""

    status: int | None = None
    cache: str | None = None  # HIT, MISS or ERROR


def fetch(base_url: str, path: str, timeout: float) -> tuple[int, str | None, str | None]:
    """GET base_url + path: (status, X-Cache, X-Cache-Error); a new connection per request (HTTP/1.0)."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader(CACHE_HEADER), response.getheader(ERROR_HEADER)
    finally:
        conn.close()


def timed_request(seq: int, base_url: str, path: str, group: str | None, timeout: float) -> CacheOp:
    start = time.monotonic()
    try:
        status, cache, cache_error = fetch(base_url, path, timeout)
    except TimeoutError as exc:
        return CacheOp(seq, path, start, time.monotonic(), UNKNOWN, f"HTTP timeout: {exc}", group=group)
    except (OSError, http.client.HTTPException) as exc:
        return CacheOp(seq, path, start, time.monotonic(), FAIL, f"HTTP {type(exc).__name__}: {exc}", group=group)
    end = time.monotonic()
    outcome = FAIL if status >= 500 else OK
    if cache_error:
        cache = CACHE_ERROR
    error = f"HTTP {status}" if status >= 500 else (f"cache: {cache_error}" if cache_error else None)
    return CacheOp(seq, path, start, end, outcome, error, group=group, status=status, cache=cache)


class RequestLoop(OpLoop):
    """GETs the paths round-robin until stopped; one loop per shard, so a slow shard delays only itself."""

    def __init__(self, base_url: str, paths: list[str], group: str, history: History, *,
                 pause_s: float = 0.005, timeout: float = 5.0):
        super().__init__(history, name=f"requests-{group}", pause_s=pause_s)
        self.base_url, self.paths, self.group, self.timeout = base_url, paths, group, timeout

    def attempt(self, seq: int) -> CacheOp:
        return timed_request(seq, self.base_url, self.paths[seq % len(self.paths)], self.group, self.timeout)
