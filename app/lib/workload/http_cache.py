"""A WSGI middleware that caches GET responses in a CacheStore as a shared cache (RFC 9111), and fails open.

Standard library only: wrap any WSGI app (Flask's app.wsgi_app, Django's application, ...).
A shared cache serves one user's stored response to every other user, so what it may store is the
whole question: see docs/cache.md, "What the response cache stores (RFC 9111)". In short:
requests with a Cookie, or Cache-Control no-store / no-cache, are answered by the app; responses
that are private, no-store, no-cache, carry Set-Cookie, say Vary: *, or answer an Authorization
request without public / s-maxage / must-revalidate are not stored; Vary selects a variant;
s-maxage, max-age and Expires set the TTL, capped by the configured one.

If the store errors (a failover in progress, a network blip), the request is served by the app and
the error is counted: the cache may make a response slower, never turn it into a 5xx.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import NamedTuple
from wsgiref.util import request_uri

from lib.workload.cache_store import CacheError, CacheStore

CACHE_HEADER = "X-Cache"
ERROR_HEADER = "X-Cache-Error"  # only with expose_errors=True: the type of the store error
HIT, MISS = "HIT", "MISS"
CACHEABLE_STATUS = {200, 203, 204}  # successful responses only: an error page must not outlive the error
UNCACHEABLE_DIRECTIVES = ("no-store", "private", "no-cache")  # no-cache: we never revalidate, so never reuse
AUTHORIZED_SHARING = ("public", "s-maxage", "must-revalidate")  # RFC 9111 §3.5
_DIRECTIVE = re.compile(r'\s*([^\s=,]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^,]*?))?\s*(?:,|$)')
Headers = list[tuple[str, str]]
SelectedHeaders = list[tuple[str, str | None]]


def request_key(method: str, url: str) -> int:
    """An unsigned 64-bit key for method + URL: the same in every process (unlike hash())."""
    return _hash64(f"{method.upper()} {url}")


def variant_key(url: str, selected: SelectedHeaders) -> int:
    """The secondary key of one variant: URL plus the (name, normalised value) of every Vary header.

    The names are in the key too, so variants stored under an older Vary list are never confused
    with the current ones. A newline cannot occur in request_uri's output, so no URL collides.
    """
    return _hash64(f"GET {url}\nvary {json.dumps(selected)}")


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def encode_response(status: str, headers: Headers, body: bytes, *, stored_at: float | None = None,
                    initial_age: int = 0, selected: SelectedHeaders | None = None) -> bytes:
    """status line and headers as one JSON line, then the body as it is (bodies may be binary).

    stored_at/initial_age give the Age of a hit; selected (a variant's Vary header values) is
    compared on lookup, so a 64-bit key collision cannot serve another variant.
    """
    meta = {"status": status, "headers": headers, "stored_at": stored_at, "age": initial_age, "selected": selected}
    return json.dumps(meta).encode() + b"\n" + body


def encode_variant_index(vary_names: tuple[str, ...]) -> bytes:
    return json.dumps({"vary": list(vary_names)}).encode() + b"\n"


def _decode(blob: bytes) -> tuple[dict, bytes]:
    meta, sep, body = blob.partition(b"\n")
    if not sep:
        raise ValueError("cached entry has no header line")
    parsed = json.loads(meta)
    if not isinstance(parsed, dict):
        raise TypeError("cached entry header is not an object")
    return parsed, body


def decode_response(blob: bytes) -> tuple[str, Headers, bytes]:
    meta, body = _decode(blob)
    return meta["status"], [tuple(h) for h in meta["headers"]], body


def parse_cache_control(values: Iterable[str]) -> dict[str, str | None]:
    """Directive (lower case) -> argument (unquoted) or None, over every Cache-Control field line.

    A quoted argument may hold commas (private="Set-Cookie, X-A"), hence the regex, not split(",").
    A repeated directive keeps its first value.
    """
    directives: dict[str, str | None] = {}
    for match in _DIRECTIVE.finditer(",".join(values)):
        name, argument = match.group(1).lower(), match.group(2)
        if argument is not None and argument.startswith('"'):
            argument = re.sub(r"\\(.)", r"\1", argument[1:-1])
        directives.setdefault(name, argument)
    return directives


def header_values(headers: Headers, name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name]


def vary_names(headers: Headers) -> tuple[str, ...]:
    """The request header names a response varies on: lower case, sorted, without duplicates."""
    names = {n.strip().lower() for v in header_values(headers, "vary") for n in v.split(",")}
    return tuple(sorted(names - {""}))


def request_header(environ: dict, name: str) -> str | None:
    key = name.upper().replace("-", "_")
    return environ.get(key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}")


def selected_headers(environ: dict, names: tuple[str, ...]) -> SelectedHeaders:
    """(name, value) per Vary name; None when absent (absent and empty differ).

    Normalised only where it cannot merge two users: whitespace around the value and around
    commas. Never lower-cased: values such as tokens and cookies are case-sensitive.
    """
    selected: SelectedHeaders = []
    for name in names:
        value = request_header(environ, name)
        selected.append((name, None if value is None else re.sub(r"\s*,\s*", ",", value.strip())))
    return selected


def _delta_seconds(argument: str | None) -> int:
    """An invalid max-age / s-maxage counts as 0 (stale, RFC 9111 §4.2.1): do not store on a guess."""
    return int(argument) if argument is not None and argument.isdigit() else 0


def _http_date(value: str | None) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError):
        return None
    return parsed if parsed is None or parsed.tzinfo else parsed.replace(tzinfo=UTC)


def freshness_lifetime(directives: dict[str, str | None], headers: Headers, now: datetime) -> timedelta | None:
    """s-maxage, else max-age, else Expires - Date (RFC 9111 §4.2.1); None when the response gives none.

    An unparsable Expires (e.g. "0") is in the past (§5.3).
    """
    for name in ("s-maxage", "max-age"):
        if name in directives:
            return timedelta(seconds=_delta_seconds(directives[name]))
    expires = header_values(headers, "expires")
    if not expires:
        return None
    expires_at = _http_date(expires[0])
    if expires_at is None:
        return timedelta(0)
    return expires_at - (_http_date(next(iter(header_values(headers, "date")), None)) or now)


class StorageDecision(NamedTuple):
    ttl: timedelta | None  # None: do not store
    reason: str | None  # why not
    vary: tuple[str, ...] = ()
    initial_age: int = 0


def storage_decision(status: str, headers: Headers, *, authorized: bool, cap: timedelta,
                     now: datetime) -> StorageDecision:
    """May a shared cache store this response, and for how long (never longer than cap)."""
    def refuse(reason: str) -> StorageDecision:
        return StorageDecision(None, reason)

    if int(status.split(" ", 1)[0]) not in CACHEABLE_STATUS:
        return refuse("status")
    directives = parse_cache_control(header_values(headers, "cache-control"))
    for directive in UNCACHEABLE_DIRECTIVES:
        if directive in directives:
            return refuse(directive)
    if header_values(headers, "set-cookie"):
        return refuse("set-cookie")  # a stored Set-Cookie would hand one session to every user
    vary = vary_names(headers)
    if "*" in vary:
        return refuse("vary *")
    if authorized and not any(d in directives for d in AUTHORIZED_SHARING):
        return refuse("authorization")
    initial_age = _delta_seconds(next(iter(header_values(headers, "age")), None))
    lifetime = freshness_lifetime(directives, headers, now)
    ttl = cap if lifetime is None else min(cap, lifetime - timedelta(seconds=initial_age))
    if ttl <= timedelta(0):
        return refuse("expired")
    return StorageDecision(ttl, None, vary, initial_age)


@dataclass
class CacheStats:
    """Counters of one middleware, safe to update from the server's request threads.

    bypassed: requests never looked up (not a GET, a Cookie, request no-cache/no-store), by reason in
    bypass_reasons; not_stored: app responses the cache refused to store, by reason in not_stored_reasons.
    """

    hits: int = 0
    misses: int = 0
    stored: int = 0
    errors: int = 0
    bypassed: int = 0
    not_stored: int = 0
    last_error: str | None = None
    bypass_reasons: Counter[str] = field(default_factory=Counter)
    not_stored_reasons: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, name: str, error: Exception | None = None) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)
            if error is not None:
                self.last_error = f"{type(error).__name__}: {error}"

    def count_reason(self, name: str, reason: str) -> None:
        """name is "bypassed" or "not_stored"; the reason is tallied beside it."""
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)
            (self.bypass_reasons if name == "bypassed" else self.not_stored_reasons)[reason] += 1

    def to_dict(self) -> dict:
        with self._lock:
            return {"hits": self.hits, "misses": self.misses, "stored": self.stored, "errors": self.errors,
                    "bypassed": self.bypassed, "last_error": self.last_error, "not_stored": self.not_stored,
                    "bypass_reasons": dict(self.bypass_reasons), "not_stored_reasons": dict(self.not_stored_reasons)}


class HTTPCache:
    """cache = HTTPCache(app, store, ttl=timedelta(minutes=5)); serve cache as the WSGI app.

    ttl is the longest a response is kept, and the TTL of responses that give no freshness of their
    own. cache_with_cookies=True looks up and stores requests that carry a Cookie: only for apps
    whose per-user pages say private or Vary: Cookie. clock (epoch seconds) is for tests.
    """

    def __init__(self, app: Callable, store: CacheStore, *, ttl: timedelta = timedelta(minutes=5),
                 expose_errors: bool = False, cache_with_cookies: bool = False,
                 clock: Callable[[], float] = time.time):
        self.app, self.store, self.ttl = app, store, ttl
        self.expose_errors, self.cache_with_cookies, self.clock = expose_errors, cache_with_cookies, clock
        self.stats = CacheStats()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET") != "GET":
            self.stats.count_reason("bypassed", "method")
            return self.app(environ, start_response)
        request_cc = parse_cache_control([request_header(environ, "Cache-Control") or ""])
        pass_reason = self._pass_reason(environ, request_cc)
        if pass_reason is not None:
            self.stats.count_reason("bypassed", pass_reason)
            status, headers, body = self._call_app(environ)
            start_response(status, [*headers, (CACHE_HEADER, MISS)])
            return [body]
        url = request_uri(environ, include_query=True)
        failure: Exception | None = None
        store_down = False
        if "no-cache" in request_cc:  # the client wants the origin's answer, which may refresh the entry
            self.stats.count_reason("bypassed", "no-cache request")
        else:
            try:
                hit = self._lookup(url, environ, request_cc)
                if hit is not None:
                    self.stats.count("hits")
                    start_response(hit[0], [*hit[1], (CACHE_HEADER, HIT)])
                    return [hit[2]]
            except (ValueError, KeyError, TypeError) as exc:  # a corrupt entry: a miss, overwritten below
                failure = CacheError(f"undecodable cache entry: {type(exc).__name__}: {exc}")
            except Exception as exc:  # noqa: BLE001 - fail open: whatever the store raised, the app answers
                failure, store_down = exc, True  # no SET either: it would only wait for the same error
            if failure is not None:
                self.stats.count("errors", failure)
            self.stats.count("misses")
        status, headers, body = self._call_app(environ)
        if not store_down:
            failure = self._store(url, environ, status, headers, body) or failure
        extra = [(CACHE_HEADER, MISS)]
        if failure is not None and self.expose_errors:
            extra.append((ERROR_HEADER, type(failure.__cause__ or failure).__name__))
        start_response(status, [*headers, *extra])
        return [body]

    def _pass_reason(self, environ: dict, request_cc: dict[str, str | None]) -> str | None:
        """Why the cache must neither look up nor store this GET, or None."""
        if "no-store" in request_cc:
            return "no-store request"
        if not self.cache_with_cookies and (request_header(environ, "Cookie") or "").strip():
            return "cookie"
        return None

    def _lookup(self, url: str, environ: dict, request_cc: dict[str, str | None]) -> tuple[str, Headers, bytes] | None:
        """The stored response for this request, with its Age, or None.

        The URL key holds either the response itself (no Vary) or a variant index naming the Vary
        headers: the request headers that select a variant are known only from a response, so a
        lookup first learns them under the URL key, then reads the variant under variant_key (what
        shared caches such as Varnish and Squid do). A response without Vary stays under the URL key,
        so request_key still says where a page lives (lib/phases/cache_failover.py picks shards by it).
        """
        blob, found = self.store.get(request_key("GET", url))
        if not found:
            return None
        meta, body = _decode(blob)
        if "vary" in meta:
            selected = selected_headers(environ, tuple(meta["vary"]))
            blob, found = self.store.get(variant_key(url, selected))
            if not found:
                return None
            meta, body = _decode(blob)
            if [tuple(s) for s in meta["selected"] or ()] != selected:
                return None  # a 64-bit key collision: another variant's page
        now = self.clock()
        age = meta.get("age", 0) + max(0, int(now - (meta.get("stored_at") or now)))  # entries of older versions: 0
        if "max-age" in request_cc and age > _delta_seconds(request_cc["max-age"]):
            return None  # older than the client accepts (a browser reload sends max-age=0)
        headers = [(k, v) for k, v in meta["headers"] if k.lower() != "age"]
        return meta["status"], [*headers, ("Age", str(age))], body

    def _store(self, url: str, environ: dict, status: str, headers: Headers, body: bytes) -> Exception | None:
        """Store the response if a shared cache may; returns the store's error (counted), if any."""
        now = self.clock()
        now_utc = datetime.fromtimestamp(now, UTC)
        decision = storage_decision(status, headers, authorized=request_header(environ, "Authorization") is not None,
                                    cap=self.ttl, now=now_utc)
        if decision.ttl is None:
            self.stats.count_reason("not_stored", decision.reason or "")
            return None
        primary = request_key("GET", url)
        try:
            if decision.vary:
                selected = selected_headers(environ, decision.vary)
                entry = encode_response(status, headers, body, stored_at=now, initial_age=decision.initial_age,
                                        selected=selected)
                self.store.set(variant_key(url, selected), entry, now_utc + decision.ttl)
                # the index outlives any variant (ttl is their cap): an index without a variant is a miss
                self.store.set(primary, encode_variant_index(decision.vary), now_utc + self.ttl)
            else:
                entry = encode_response(status, headers, body, stored_at=now, initial_age=decision.initial_age)
                self.store.set(primary, entry, now_utc + decision.ttl)
            self.stats.count("stored")
        except Exception as exc:  # noqa: BLE001 - fail open, counted
            self.stats.count("errors", exc)
            return exc
        return None

    def _call_app(self, environ: dict) -> tuple[str, Headers, bytes]:
        """Run the app to completion, buffering its body (needed to store it; WSGI write() included)."""
        captured: dict = {}
        chunks: list[bytes] = []

        def capture(status: str, headers: Headers, exc_info=None) -> Callable[[bytes], None]:
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
