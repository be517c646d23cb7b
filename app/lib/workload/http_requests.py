"""An HTTP client loop over a fixed URL set, recording every request in a History (Jepsen-style).

Each request is an Op of process HTTP: ok (any response below 500), fail (a 5xx, or the server refused us) or
unknown (timed out: we cannot tell what the server did). Its value holds the status and what the cache did for it
(HIT, MISS, ERROR = the store failed and the app answered): cache_of(op), status_of(op).
"""

from __future__ import annotations

import http.client
import time
from urllib.parse import urlsplit

from lib.history import FAIL, OK, UNKNOWN, History, Op
from lib.workload.http_cache import CACHE_HEADER, ERROR_HEADER
from lib.workload.workload import OpLoop

CACHE_ERROR = "ERROR"  # X-Cache: MISS with X-Cache-Error set: the store failed, the app served it
HTTP, GET = "http", "get"  # the process and f of the requests in the history


def cache_of(op: Op) -> str | None:
    """HIT, MISS or ERROR: what the cache did for the request (None: no response)."""
    return (op.value or {}).get("cache") if isinstance(op.value, dict) else None


def status_of(op: Op) -> int | None:
    return (op.value or {}).get("status") if isinstance(op.value, dict) else None


def request_op(seq: int, path: str, start: float, end: float, outcome: str, error: str | None, group: str | None,
               status: int | None = None, cache: str | None = None) -> Op:
    """One HTTP request as an operation (key = the path, group = its cache shard)."""
    return Op(seq, path, start, end, outcome, error, group=group, value={"status": status, "cache": cache},
              process=HTTP, f=GET)


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


def timed_request(seq: int, base_url: str, path: str, group: str | None, timeout: float) -> Op:
    start = time.monotonic()
    try:
        status, cache, cache_error = fetch(base_url, path, timeout)
    except TimeoutError as exc:
        return request_op(seq, path, start, time.monotonic(), UNKNOWN, f"HTTP timeout: {exc}", group)
    except (OSError, http.client.HTTPException) as exc:
        return request_op(seq, path, start, time.monotonic(), FAIL, f"HTTP {type(exc).__name__}: {exc}", group)
    end = time.monotonic()
    outcome = FAIL if status >= 500 else OK
    if cache_error:
        cache = CACHE_ERROR
    error = f"HTTP {status}" if status >= 500 else (f"cache: {cache_error}" if cache_error else None)
    return request_op(seq, path, start, end, outcome, error, group, status, cache)


class RequestLoop(OpLoop):
    """GETs the paths round-robin until stopped; one loop per shard, so a slow shard delays only itself."""

    def __init__(self, base_url: str, paths: list[str], group: str, history: History, *,
                 pause_s: float = 0.005, timeout: float = 5.0):
        super().__init__(history, name=f"requests-{group}", pause_s=pause_s)
        self.base_url, self.paths, self.group, self.timeout = base_url, paths, group, timeout

    def attempt(self, seq: int) -> Op:
        return timed_request(seq, self.base_url, self.paths[seq % len(self.paths)], self.group, self.timeout)
