"""A WSGI middleware that caches successful GET responses in a CacheStore, and fails open.

Standard library only: wrap any WSGI app (Flask's app.wsgi_app, Django's application, ...).
The cache key is a 64-bit hash of method + full URL. If the store errors (a failover in
progress, a network blip), the request is served by the app and the error is counted: the cache
may make a response slower, never turn it into a 5xx.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from wsgiref.util import request_uri

from lib.cache_store import CacheError, CacheStore

CACHE_HEADER = "X-Cache"
ERROR_HEADER = "X-Cache-Error"  # only with expose_errors=True: the type of the store error
HIT, MISS = "HIT", "MISS"
CACHEABLE_STATUS = {200, 203, 204}  # successful responses only: an error page must not outlive the error
UNCACHEABLE_DIRECTIVES = ("no-store", "private")


def request_key(method: str, url: str) -> int:
    """An unsigned 64-bit key for method + URL: the same in every process (unlike hash())."""
    digest = hashlib.blake2b(f"{method.upper()} {url}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def encode_response(status: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    """status line and headers as one JSON line, then the body as it is (bodies may be binary)."""
    return json.dumps({"status": status, "headers": headers}).encode() + b"\n" + body


def decode_response(blob: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    meta, sep, body = blob.partition(b"\n")
    if not sep:
        raise ValueError("cached entry has no header line")
    parsed = json.loads(meta)
    return parsed["status"], [tuple(h) for h in parsed["headers"]], body


@dataclass
class CacheStats:
    """Counters of one middleware, safe to update from the server's request threads."""

    hits: int = 0
    misses: int = 0
    stored: int = 0
    errors: int = 0
    bypassed: int = 0  # not a GET: never looked up
    last_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, name: str, error: Exception | None = None) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)
            if error is not None:
                self.last_error = f"{type(error).__name__}: {error}"

    def to_dict(self) -> dict:
        with self._lock:
            return {"hits": self.hits, "misses": self.misses, "stored": self.stored, "errors": self.errors,
                    "bypassed": self.bypassed, "last_error": self.last_error}


class HTTPCache:
    """cache = HTTPCache(app, store, ttl=timedelta(minutes=5)); serve cache as the WSGI app."""

    def __init__(self, app: Callable, store: CacheStore, *, ttl: timedelta = timedelta(minutes=5),
                 expose_errors: bool = False):
        self.app, self.store, self.ttl = app, store, ttl
        self.expose_errors = expose_errors
        self.stats = CacheStats()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET") != "GET":
            self.stats.count("bypassed")
            return self.app(environ, start_response)
        key = request_key("GET", request_uri(environ, include_query=True))
        failure: Exception | None = None
        store_down = False
        try:
            blob, found = self.store.get(key)
            if found:
                status, headers, body = decode_response(blob)
                self.stats.count("hits")
                start_response(status, [*headers, (CACHE_HEADER, HIT)])
                return [body]
        except (ValueError, KeyError, TypeError) as exc:  # a corrupt entry: a miss, overwritten below
            failure = CacheError(f"undecodable cache entry: {type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 - fail open: whatever the store raised, the app answers
            failure, store_down = exc, True  # no SET either: it would only wait for the same error
        if failure is not None:
            self.stats.count("errors", failure)
        self.stats.count("misses")
        status, headers, body = self._call_app(environ)
        if not store_down and self._cacheable(status, headers):
            try:
                self.store.set(key, encode_response(status, headers, body), datetime.now(UTC) + self.ttl)
                self.stats.count("stored")
            except Exception as exc:  # noqa: BLE001 - fail open, counted
                failure = exc
                self.stats.count("errors", exc)
        extra = [(CACHE_HEADER, MISS)]
        if failure is not None and self.expose_errors:
            extra.append((ERROR_HEADER, type(failure.__cause__ or failure).__name__))
        start_response(status, [*headers, *extra])
        return [body]

    def _call_app(self, environ: dict) -> tuple[str, list[tuple[str, str]], bytes]:
        """Run the app to completion, buffering its body (needed to store it; WSGI write() included)."""
        captured: dict = {}
        chunks: list[bytes] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info=None) -> Callable[[bytes], None]:
            if exc_info and captured:
                raise exc_info[1].with_traceback(exc_info[2])
            captured["status"], captured["headers"] = status, list(headers)
            return chunks.append

        result = self.app(environ, capture)
        try:
            chunks.extend(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        return captured["status"], captured["headers"], b"".join(chunks)

    @staticmethod
    def _cacheable(status: str, headers: list[tuple[str, str]]) -> bool:
        code = int(status.split(" ", 1)[0])
        directives = ",".join(v.lower() for k, v in headers if k.lower() == "cache-control")
        per_user = any(k.lower() == "set-cookie" for k, _ in headers)  # one user's cookie, served to all
        return code in CACHEABLE_STATUS and not per_user and not any(d in directives for d in UNCACHEABLE_DIRECTIVES)
