"""The response cache as a shared cache (RFC 9111): no user ever gets another user's page; Vary; TTLs.

Unit tests on an in-memory store with a fake clock; one integration test on a real Valkey master.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from wsgiref.util import setup_testing_defaults

import pytest

from lib.workload.cache_store import CacheUnavailable, RedisCacheStore, storage_key
from lib.workload.http_cache import HIT, MISS, HTTPCache, parse_cache_control, request_key, variant_key
from lib.workload.http_server import LocalWsgiServer

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
CAP = timedelta(minutes=5)


class FakeClock:
    def __init__(self) -> None:
        self.now = NOW.timestamp()

    def __call__(self) -> float:
        return self.now


class MemoryStore:
    """Entries with the expiration they were given; counts lookups; can be made to refuse every call."""

    def __init__(self) -> None:
        self.entries: dict[int, bytes] = {}
        self.expirations: dict[int, datetime] = {}
        self.gets = 0
        self.down = False

    def get(self, key: int) -> tuple[bytes, bool]:
        self.gets += 1
        if self.down:
            raise CacheUnavailable("cache GET: ConnectionError: refused")
        return (self.entries[key], True) if key in self.entries else (b"", False)

    def set(self, key: int, response: bytes, expiration: datetime) -> None:
        if self.down:
            raise CacheUnavailable("cache SET: ConnectionError: refused")
        self.entries[key], self.expirations[key] = response, expiration

    def delete(self, key: int) -> None:
        self.entries.pop(key, None)

    def clear(self) -> int:
        count = len(self.entries)
        self.entries.clear()
        return count


class PerUserOrigin:
    """An app whose page names the caller (Authorization, Cookie, Accept-Language), with the headers a test sets."""

    def __init__(self, *headers: tuple[str, str]) -> None:
        self.headers = list(headers)
        self.calls = 0

    def __call__(self, environ: dict, start_response: Callable) -> list[bytes]:
        self.calls += 1
        who = [environ.get(k, "-") for k in ("HTTP_AUTHORIZATION", "HTTP_COOKIE", "HTTP_ACCEPT_LANGUAGE")]
        start_response("200 OK", [("Content-Type", "text/plain"), *self.headers])
        return [f"page for {' '.join(who)}".encode()]


def call(app: Callable, path: str = "/me", **headers: str) -> tuple[str, dict, bytes]:
    """GET path with request headers given as Accept_Language="fr" (underscores become dashes)."""
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
    environ.update({f"HTTP_{name.upper()}": value for name, value in headers.items()})
    setup_testing_defaults(environ)
    seen: dict = {}

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info=None) -> None:
        seen["status"], seen["headers"] = status, dict(response_headers)

    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body


def stored_ttl(store: MemoryStore) -> timedelta:
    (expiration,) = store.expirations.values()
    return expiration - NOW


def cache_for(origin: Callable, store: MemoryStore | None = None, **options) -> HTTPCache:
    return HTTPCache(origin, store if store is not None else MemoryStore(), ttl=CAP, clock=FakeClock(), **options)


# ---- Authorization (RFC 9111 §3.5) --------------------------------------------------------------

def test_two_users_with_different_authorization_never_see_each_others_page():
    origin = PerUserOrigin()
    cache = cache_for(origin)
    alice = call(cache, Authorization="Bearer alice")
    bob = call(cache, Authorization="Bearer bob")
    assert alice[2] == b"page for Bearer alice - -" and bob[2] == b"page for Bearer bob - -", "each got their own"
    assert bob[1]["X-Cache"] == MISS and origin.calls == 2, "bob's page was rendered for bob"
    assert cache.store.entries == {}, "a response to an Authorization request without public is not stored"
    assert cache.stats.not_stored_reasons == {"authorization": 2}
    assert call(cache)[2] == b"page for - - -", "an anonymous user does not get a user's page either"


@pytest.mark.parametrize("cache_control", ["public", "s-maxage=60", "must-revalidate", "public, max-age=60"])
def test_an_authorized_response_is_shared_when_it_says_so(cache_control):
    origin = PerUserOrigin(("Cache-Control", cache_control))
    cache = cache_for(origin)
    call(cache, Authorization="Bearer alice")
    second = call(cache, Authorization="Bearer bob")
    assert second[1]["X-Cache"] == HIT and origin.calls == 1, f"{cache_control!r} allows a shared cache to store it"


@pytest.mark.parametrize("cache_control", ["max-age=60", "no-transform", "proxy-revalidate"])
def test_an_authorized_response_without_public_s_maxage_or_must_revalidate_is_not_stored(cache_control):
    cache = cache_for(PerUserOrigin(("Cache-Control", cache_control)))
    call(cache, Authorization="Bearer alice")
    assert cache.store.entries == {}, f"{cache_control!r} does not make an authorized response shareable"


# ---- Cookie ---------------------------------------------------------------------------------------

def test_two_users_with_different_cookies_never_see_each_others_page():
    origin = PerUserOrigin()
    cache = cache_for(origin)
    alice, bob = call(cache, Cookie="session=alice"), call(cache, Cookie="session=bob")
    assert alice[2] == b"page for - session=alice -" and bob[2] == b"page for - session=bob -"
    assert (alice[1]["X-Cache"], bob[1]["X-Cache"]) == (MISS, MISS) and origin.calls == 2
    assert cache.store.entries == {} and cache.store.gets == 0, "a Cookie request is neither stored nor looked up"
    assert cache.stats.bypass_reasons == {"cookie": 2}


def test_a_cookie_request_passes_through_even_when_the_page_is_cached():
    origin = PerUserOrigin()
    cache = cache_for(origin)
    call(cache)
    assert call(cache)[1]["X-Cache"] == HIT, "the anonymous page is cached"
    status, headers, body = call(cache, Cookie="session=alice")
    assert headers["X-Cache"] == MISS and body == b"page for - session=alice -", "alice's own page, from the app"


def test_cache_with_cookies_looks_up_and_stores_cookie_requests_when_asked_to():
    origin = PerUserOrigin()
    cache = cache_for(origin, cache_with_cookies=True)
    call(cache, Cookie="consent=yes")
    assert call(cache, Cookie="consent=yes")[1]["X-Cache"] == HIT and origin.calls == 1


def test_cache_with_cookies_still_separates_users_that_vary_on_cookie():
    origin = PerUserOrigin(("Vary", "Cookie"))
    cache = cache_for(origin, cache_with_cookies=True)
    call(cache, Cookie="session=alice")
    bob = call(cache, Cookie="session=bob")
    alice_again = call(cache, Cookie="session=alice")
    assert bob[2] == b"page for - session=bob -" and bob[1]["X-Cache"] == MISS
    assert alice_again[2] == b"page for - session=alice -" and alice_again[1]["X-Cache"] == HIT


@pytest.mark.parametrize("cache_with_cookies", [False, True])
def test_a_response_with_set_cookie_is_never_stored(cache_with_cookies):
    cache = cache_for(PerUserOrigin(("Set-Cookie", "session=new"), ("Cache-Control", "public, max-age=60")),
                      cache_with_cookies=cache_with_cookies)
    call(cache)
    assert cache.store.entries == {}, "a stored Set-Cookie would give one session to every user"


# ---- Vary ----------------------------------------------------------------------------------------

def test_each_accept_language_gets_its_own_page_under_vary_accept_language():
    origin = PerUserOrigin(("Vary", "Accept-Language"))
    cache = cache_for(origin)
    english, french = call(cache, Accept_Language="en"), call(cache, Accept_Language="fr")
    english_again, french_again = call(cache, Accept_Language="en"), call(cache, Accept_Language="fr")
    assert english[2] == english_again[2] == b"page for - - en"
    assert french[2] == french_again[2] == b"page for - - fr"
    assert (english_again[1]["X-Cache"], french_again[1]["X-Cache"]) == (HIT, HIT) and origin.calls == 2
    assert call(cache)[2] == b"page for - - -", "no Accept-Language is a variant of its own"


def test_vary_values_are_normalised_but_never_lower_cased():
    origin = PerUserOrigin(("Vary", "accept-language, Authorization"), ("Cache-Control", "public"))
    cache = cache_for(origin)
    call(cache, Accept_Language="en, fr", Authorization="Token abc")
    assert call(cache, Accept_Language="  en ,fr ", Authorization="Token abc")[1]["X-Cache"] == HIT
    other = call(cache, Accept_Language="en, fr", Authorization="Token ABC")
    assert other[1]["X-Cache"] == MISS and other[2] == b"page for Token ABC - en, fr", "tokens are case-sensitive"


def test_vary_stores_an_index_under_the_url_key_and_the_page_under_the_variant_key():
    cache = cache_for(PerUserOrigin(("Vary", "Accept-Language")))
    call(cache, "/p", Accept_Language="fr")
    url = "http://127.0.0.1/p"
    index, page = request_key("GET", url), variant_key(url, [("accept-language", "fr")])
    assert set(cache.store.entries) == {index, page}
    assert cache.store.entries[index] == b'{"vary": ["accept-language"]}\n', "the index names the Vary headers"
    assert cache.store.entries[page].endswith(b"\npage for - - fr")
    assert cache.store.expirations[index] >= cache.store.expirations[page], "the index outlives its variants"


def test_a_response_without_vary_stays_under_the_url_key():
    """lib/phases/cache_failover.py picks each shard's paths by request_key: it must keep naming the entry."""
    cache = cache_for(PerUserOrigin())
    call(cache, "/p")
    assert set(cache.store.entries) == {request_key("GET", "http://127.0.0.1/p")}


def test_vary_star_is_never_stored():
    cache = cache_for(PerUserOrigin(("Vary", "Accept-Language, *")))
    call(cache)
    assert call(cache)[1]["X-Cache"] == MISS and cache.store.entries == {}
    assert cache.stats.not_stored_reasons == {"vary *": 2}


def test_a_store_error_between_index_and_variant_fails_open():
    store = MemoryStore()
    cache = cache_for(PerUserOrigin(("Vary", "Accept-Language")), store, expose_errors=True)
    call(cache, Accept_Language="en")
    store.down = True
    status, headers, body = call(cache, Accept_Language="en")
    assert (status, headers["X-Cache"], headers["X-Cache-Error"]) == ("200 OK", MISS, "CacheUnavailable")
    assert body == b"page for - - en" and cache.stats.errors == 1


# ---- freshness: s-maxage, max-age, Expires, capped ------------------------------------------------

@pytest.mark.parametrize(("headers", "expected"), [
    ([("Cache-Control", "max-age=60")], timedelta(seconds=60)),
    ([("Cache-Control", "max-age=60, s-maxage=30")], timedelta(seconds=30)),
    ([("Cache-Control", "s-maxage=90, max-age=10")], timedelta(seconds=90)),
    ([("Cache-Control", "max-age=86400")], CAP),
    ([("Cache-Control", "s-maxage=86400")], CAP),
    ([], CAP),
    ([("Date", format_datetime(NOW, usegmt=True)), ("Expires", format_datetime(NOW + timedelta(seconds=120),
                                                                                usegmt=True))],
     timedelta(seconds=120)),
    ([("Cache-Control", "max-age=60"), ("Expires", format_datetime(NOW + timedelta(hours=1), usegmt=True))],
     timedelta(seconds=60)),
    ([("Cache-Control", "max-age=60"), ("Age", "10")], timedelta(seconds=50)),
], ids=["max-age", "s-maxage-wins-lower", "s-maxage-wins-higher", "max-age-capped", "s-maxage-capped",
        "no-freshness-uses-cap", "expires", "max-age-beats-expires", "age-subtracted"])
def test_the_ttl_comes_from_s_maxage_else_max_age_else_expires_capped_by_the_configured_ttl(headers, expected):
    cache = cache_for(PerUserOrigin(*headers))
    call(cache)
    assert stored_ttl(cache.store) == expected, f"TTL for {headers}"


@pytest.mark.parametrize("headers", [
    [("Cache-Control", "max-age=0")],
    [("Cache-Control", "s-maxage=0")],
    [("Cache-Control", "s-maxage=0, max-age=60")],
    [("Cache-Control", "max-age=soon")],
    [("Expires", "0")],
    [("Expires", format_datetime(NOW - timedelta(seconds=1), usegmt=True))],
    [("Cache-Control", "max-age=60"), ("Age", "60")],
], ids=["max-age-0", "s-maxage-0", "s-maxage-0-wins", "invalid-max-age", "expires-0", "expires-past", "aged-out"])
def test_a_response_that_is_already_stale_is_not_stored(headers):
    cache = cache_for(PerUserOrigin(*headers))
    call(cache)
    assert cache.store.entries == {} and cache.stats.not_stored_reasons == {"expired": 1}, f"{headers}"


@pytest.mark.parametrize("cache_control", ["no-store", "private", 'private="Set-Cookie"', "no-cache",
                                           "public, no-store", "max-age=60, PRIVATE"])
def test_no_store_private_and_no_cache_responses_are_never_stored(cache_control):
    cache = cache_for(PerUserOrigin(("Cache-Control", cache_control)))
    call(cache)
    assert call(cache)[1]["X-Cache"] == MISS and cache.store.entries == {}, f"{cache_control!r} was stored"


def test_a_hit_says_its_age_and_respects_the_clients_max_age():
    origin = PerUserOrigin(("Cache-Control", "max-age=100"), ("Age", "5"))
    cache = cache_for(origin)
    call(cache)
    cache.clock.now += 30
    hit = call(cache)
    assert hit[1]["X-Cache"] == HIT and hit[1]["Age"] == "35", "5 s old when stored, 30 s in the cache"
    assert call(cache, Cache_Control="max-age=40")[1]["X-Cache"] == HIT
    assert call(cache, Cache_Control="max-age=0")[1]["X-Cache"] == MISS and origin.calls == 2, "a reload"


# ---- request directives ----------------------------------------------------------------------------

def test_a_no_cache_request_goes_to_the_app_and_refreshes_the_entry():
    origin = PerUserOrigin()
    cache = cache_for(origin)
    call(cache)
    refreshed = call(cache, Cache_Control="no-cache")
    assert refreshed[1]["X-Cache"] == MISS and origin.calls == 2, "served by the app despite a stored page"
    assert cache.stats.stored == 2 and call(cache)[1]["X-Cache"] == HIT


def test_a_no_store_request_goes_to_the_app_and_stores_nothing():
    origin = PerUserOrigin()
    cache = cache_for(origin)
    call(cache)
    assert call(cache, Cache_Control="no-store")[1]["X-Cache"] == MISS and origin.calls == 2
    assert cache.stats.stored == 1 and cache.stats.bypass_reasons == {"no-store request": 1}


# ---- parsing and stats ---------------------------------------------------------------------------

def test_cache_control_parsing_handles_case_quotes_and_several_field_lines():
    assert parse_cache_control(['Public, MAX-AGE=60, private="Set-Cookie, X-A"', "s-maxage = 5"]) == {
        "public": None, "max-age": "60", "private": "Set-Cookie, X-A", "s-maxage": "5"}
    assert parse_cache_control(["max-age=1, max-age=2"]) == {"max-age": "1"}, "the first of a repeated directive"
    assert parse_cache_control([""]) == {}


def test_stats_keep_their_existing_keys_and_add_the_reasons():
    cache = cache_for(PerUserOrigin())
    call(cache, Cookie="a=1")
    call(cache, Authorization="Basic eA==")
    stats = cache.stats.to_dict()
    assert {"hits", "misses", "stored", "errors", "bypassed", "last_error"} <= stats.keys(), "read by cache_test.py"
    assert (stats["bypassed"], stats["bypass_reasons"]) == (1, {"cookie": 1})
    assert (stats["not_stored"], stats["not_stored_reasons"]) == (1, {"authorization": 1})


# ---- on a real Valkey master ----------------------------------------------------------------------

def fetch_as(base_url: str, path: str, **headers: str) -> tuple[str | None, str | None, str]:
    """GET with request headers (underscores become dashes): (X-Cache, Age, body)."""
    conn = http.client.HTTPConnection(base_url.removeprefix("http://"), timeout=10)
    try:
        conn.request("GET", path, headers={k.replace("_", "-"): v for k, v in headers.items()})
        response = conn.getresponse()
        return response.getheader("X-Cache"), response.getheader("Age"), response.read().decode()
    finally:
        conn.close()


@pytest.mark.integration
def test_on_a_real_valkey_users_never_share_pages_and_languages_get_their_own(sentinel_store: RedisCacheStore):
    users = PerUserOrigin()
    languages = PerUserOrigin(("Vary", "Accept-Language"), ("Cache-Control", "s-maxage=30, max-age=600"))

    def app(environ: dict, start_response: Callable) -> list[bytes]:
        return (languages if environ["PATH_INFO"] == "/lang" else users)(environ, start_response)

    with LocalWsgiServer(HTTPCache(app, sentinel_store, ttl=CAP)) as server:
        alice, bob = fetch_as(server.url, "/me", Authorization="Bearer alice"), fetch_as(
            server.url, "/me", Authorization="Bearer bob")
        carol, dave = fetch_as(server.url, "/me", Cookie="s=carol"), fetch_as(server.url, "/me", Cookie="s=dave")
        pages = [fetch_as(server.url, "/lang", Accept_Language=lang) for lang in ("en", "fr", "en", "fr")]
        url = server.url + "/lang"
    assert (alice[2], bob[2]) == ("page for Bearer alice - -", "page for Bearer bob - -")
    assert (carol[2], dave[2]) == ("page for - s=carol -", "page for - s=dave -")
    assert users.calls == 4, "every user's page was rendered for that user"
    assert [(p[0], p[2]) for p in pages] == [(MISS, "page for - - en"), (MISS, "page for - - fr"),
                                             (HIT, "page for - - en"), (HIT, "page for - - fr")]
    french = storage_key(sentinel_store.prefix, variant_key(url, [("accept-language", "fr")]))
    pttl = sentinel_store.client.pttl(french)
    assert 0 < pttl <= 30_000, f"the variant's PTTL on the server is {pttl} ms: s-maxage=30 beats max-age=600"
    assert sentinel_store.client.exists(storage_key(sentinel_store.prefix, request_key("GET", url))) == 1, \
        "the variant index under the URL key"
