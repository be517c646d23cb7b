"""Unit tests of the cache pieces that need no server: key hashing, expiry, entry encoding, the middleware."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from wsgiref.util import setup_testing_defaults

import pytest
import redis

from lib.history import Op
from lib.phases.cache_outage import request_totals, shard_recovery
from lib.util import REPO_ROOT
from lib.workload.cache_ring import RingStore
from lib.workload.cache_store import MAX_KEY, CacheError, CacheUnavailable, RedisCacheStore, storage_key, ttl_ms
from lib.workload.http_cache import HIT, MISS, HTTPCache, decode_response, encode_response, request_key
from lib.workload.http_requests import CACHE_ERROR, request_op
from lib.workload.http_server import OriginApp

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


# ---- key hashing ---------------------------------------------------------------------------------

def test_storage_key_is_prefix_plus_16_hex_digits_for_the_whole_uint64_range():
    assert storage_key("p:", 0) == "p:0000000000000000"
    assert storage_key("p:", MAX_KEY) == "p:ffffffffffffffff"


@pytest.mark.parametrize("bad", [-1, MAX_KEY + 1, True, 1.0, "1"])
def test_storage_key_rejects_what_is_not_an_unsigned_64_bit_int(bad):
    with pytest.raises(ValueError, match="unsigned 64-bit"):
        storage_key("p:", bad)


def test_request_key_is_a_stable_64_bit_hash_of_method_and_url():
    key = request_key("GET", "http://example.com/a?b=1")
    assert 0 <= key <= MAX_KEY
    assert key == request_key("get", "http://example.com/a?b=1"), "the method is case-insensitive"
    assert key == 0xD5124812BABF1573, "blake2b-64: the same in every process and every Python version"
    assert key != request_key("GET", "http://example.com/a?b=2"), "the query string is part of the key"
    assert key != request_key("HEAD", "http://example.com/a?b=1"), "the method is part of the key"


KNOWN_KEYS = {"http://example.com/a?b=1": 0xD5124812BABF1573, "http://h/item/0": 0x4D65D5035D741CB8,
              "http://h/item/1": 0x157EFAA078EA3F87}


@pytest.mark.parametrize("hash_seed", ["1", "2"])
def test_request_keys_are_the_same_in_a_process_with_another_hash_seed(hash_seed):
    """Two cache clients in different processes must find each other's entries: no str hash() inside."""
    code = ("from lib.workload.http_cache import request_key; "
            f"print(*[request_key('GET', url) for url in {list(KNOWN_KEYS)!r}])")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=str(REPO_ROOT / "app")))
    assert proc.returncode == 0, proc.stderr
    assert [int(k) for k in proc.stdout.split()] == list(KNOWN_KEYS.values()), f"PYTHONHASHSEED={hash_seed}"


def test_request_keys_use_all_64_bits_and_spread_evenly_over_a_ring():
    keys = [request_key("GET", f"http://h/item/{n}") for n in range(3000)]
    for bit in range(64):
        share = sum(key >> bit & 1 for key in keys) / len(keys)
        assert 0.45 <= share <= 0.55, f"bit {bit} is set in {share:.1%} of keys, expected ~50%"
    per_node = [sum(1 for key in keys if key % 3 == node) for node in range(3)]
    assert all(880 <= count <= 1120 for count in per_node), f"key mod 3 should give ~1000 each, got {per_node}"


# ---- expiry ------------------------------------------------------------------------------------

def test_ttl_is_the_time_left_until_the_absolute_expiration():
    assert ttl_ms(NOW + timedelta(seconds=90), NOW) == 90_000
    assert ttl_ms(NOW + timedelta(microseconds=10), NOW) == 1, "an entry that expires soon still gets 1 ms"


@pytest.mark.parametrize("past", [timedelta(0), timedelta(seconds=-1), timedelta(days=-400)])
def test_ttl_of_an_expiration_now_or_past_is_none(past):
    assert ttl_ms(NOW + past, NOW) is None


def test_a_naive_expiration_is_taken_as_utc():
    naive = datetime(2026, 1, 1, 12, 0, 30)
    assert ttl_ms(naive, NOW) == 30_000


# ---- entries and errors -------------------------------------------------------------------------

def test_a_response_with_a_binary_body_round_trips():
    blob = encode_response("200 OK", [("Content-Type", "image/png")], b"\x89PNG\n\x00\xff")
    assert decode_response(blob) == ("200 OK", [("Content-Type", "image/png")], b"\x89PNG\n\x00\xff")


class _Failing:
    def __init__(self, error: Exception):
        self.error = error

    def get(self, name):
        raise self.error


def test_server_errors_reach_the_caller_typed_with_the_cause_attached():
    refused = redis.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")
    with pytest.raises(CacheUnavailable) as caught:
        RedisCacheStore(_Failing(refused), "p:").get(1)
    assert caught.value.__cause__ is refused and isinstance(caught.value, redis.ConnectionError)
    wrong_type = redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")
    with pytest.raises(CacheError) as caught:
        RedisCacheStore(_Failing(wrong_type), "p:").get(1)
    assert not isinstance(caught.value, CacheUnavailable) and "WRONGTYPE" in str(caught.value)


def test_an_empty_prefix_is_refused_because_clear_would_delete_everything():
    with pytest.raises(ValueError, match="prefix"):
        RedisCacheStore(object(), "")


def test_the_ring_picks_a_node_by_key_modulo_the_node_count():
    ring = RingStore(["a", "b", "c"], "p:")
    # 2**64 - 1 = 18446744073709551615, digit sum 87, so divisible by 3; 2**63 = 2 (mod 3); 10**18 = 1 (mod 3)
    assert [ring.node_for(k) for k in (0, 1, 2, 3, MAX_KEY, 2**63, 10**18)] == ["a", "b", "c", "a", "a", "c", "b"]


# ---- the middleware, on an in-memory store -----------------------------------------------------

class MemoryStore:
    def __init__(self):
        self.entries: dict[int, bytes] = {}
        self.down = False

    def get(self, key):
        if self.down:
            raise CacheUnavailable("cache GET: ConnectionError: refused")
        return (self.entries[key], True) if key in self.entries else (b"", False)

    def set(self, key, response, expiration):
        if self.down:
            raise CacheUnavailable("cache SET: ConnectionError: refused")
        self.entries[key] = response

    def delete(self, key):
        self.entries.pop(key, None)

    def clear(self):
        self.entries.clear()


def call(app, path: str, method: str = "GET") -> tuple[str, dict, bytes]:
    environ = {"PATH_INFO": path, "REQUEST_METHOD": method}
    setup_testing_defaults(environ)
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body


def test_first_get_is_a_miss_and_the_second_a_hit_without_the_origin():
    origin, store = OriginApp(), MemoryStore()
    cache = HTTPCache(origin, store)
    first, second = call(cache, "/a"), call(cache, "/a")
    assert first[1]["X-Cache"] == MISS and second[1]["X-Cache"] == HIT
    assert first[0] == second[0] == "200 OK" and first[2] == second[2] == b"page /a\n"
    assert origin.calls["/a"] == 1, "the hit was served from the store"
    assert cache.stats.to_dict()["hits"] == 1 and cache.stats.stored == 1


def test_errors_posts_and_private_responses_are_not_cached():
    store = MemoryStore()
    cache = HTTPCache(OriginApp(), store)
    assert call(cache, "/fail")[0].startswith("500"), "an origin 5xx passes through unchanged"
    assert call(cache, "/fail")[1]["X-Cache"] == MISS, "and is never stored"
    call(cache, "/a", method="POST")
    assert store.entries == {} and cache.stats.bypassed == 1

    def private(environ, start_response):
        start_response("200 OK", [("Set-Cookie", "session=1")])
        return [b"yours"]

    call(HTTPCache(private, store), "/me")
    assert store.entries == {}, "a response with Set-Cookie belongs to one user"


def test_the_cache_fails_open_when_the_store_is_down():
    origin, store = OriginApp(), MemoryStore()
    cache = HTTPCache(origin, store, expose_errors=True)
    call(cache, "/a")
    store.down = True
    status, headers, body = call(cache, "/a")
    assert status == "200 OK" and body == b"page /a\n", "served by the app, not turned into a 5xx"
    assert headers["X-Cache"] == MISS and headers["X-Cache-Error"] == "CacheUnavailable"
    assert cache.stats.errors == 1 and origin.calls["/a"] == 2
    assert "X-Cache-Error" not in call(HTTPCache(origin, store), "/a")[1], "error types are private by default"


def test_a_corrupt_entry_is_a_counted_miss_and_is_overwritten():
    origin, store = OriginApp(), MemoryStore()
    cache = HTTPCache(origin, store)
    call(cache, "/a")
    (key,) = store.entries
    store.entries[key] = b"not an entry"
    assert call(cache, "/a")[1]["X-Cache"] == MISS and cache.stats.errors == 1
    assert call(cache, "/a")[1]["X-Cache"] == HIT, "the fresh response replaced the corrupt entry"
    assert origin.calls["/a"] == 2


def test_the_cache_fails_open_whatever_the_store_raises():
    class Broken(MemoryStore):
        def get(self, key):
            raise redis.exceptions.RedisClusterException("Redis Cluster cannot be connected")  # not a RedisError

    cache = HTTPCache(OriginApp(), Broken())
    assert call(cache, "/a")[0] == "200 OK" and cache.stats.errors == 1
    assert "cannot be connected" in cache.stats.last_error


def test_cluster_client_errors_that_are_not_redis_errors_still_reach_the_caller_typed():
    with pytest.raises(CacheUnavailable):
        RedisCacheStore(_Failing(redis.exceptions.SlotNotCoveredError("slot 5 not covered")), "p:").get(1)


# ---- the checker -------------------------------------------------------------------------------

def op(seq: int, start: float, cache: str, status: int = 200, group: str = "s") -> Op:
    return request_op(seq, f"/p{seq}", start, start + 0.01, "ok" if status < 500 else "fail", None, group,
                      status, cache)


def test_hits_return_at_the_first_hit_after_the_last_store_error():
    ops = [op(0, 0.0, HIT), op(1, 1.0, CACHE_ERROR), op(2, 2.0, HIT), op(3, 3.0, CACHE_ERROR), op(4, 4.0, MISS),
           op(5, 5.0, HIT), op(6, 6.0, HIT, group="other")]
    recovery = shard_recovery("s", ops, fault_at=0.5)
    assert (recovery.cache_errors, recovery.first_error_at, recovery.last_error_at) == (2, 1.01, 3.01)
    assert recovery.client_recovered_at == 4.01, "the first request whose store call worked"
    assert recovery.hits_returned_at == 5.01, "the MISS at 4 re-filled the entry, the HIT at 5 is the return"
    assert shard_recovery("other", ops, 0.5).cache_errors == 0


def test_request_totals_count_hits_errors_and_5xx():
    totals = request_totals([op(0, 0, HIT), op(1, 1, MISS), op(2, 2, CACHE_ERROR), op(3, 3, MISS, status=502)])
    assert (totals.requests, totals.hits, totals.cache_errors, totals.http_5xx) == (4, 1, 1, 1)
    assert totals.hit_ratio == 0.25
