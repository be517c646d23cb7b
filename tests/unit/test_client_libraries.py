"""The compared client libraries (lib/clients/libraries): each library's exceptions become the right
outcome, attempts a library retries itself are judged together, GLIDE's sentinel rebuild swaps clients
safely, and --clients parsing."""

from __future__ import annotations

import pytest
import redis.exceptions
import valkey.exceptions
from glide_sync import ClosingError, RequestError
from glide_sync import ConnectionError as GlideConnectionError
from glide_sync import TimeoutError as GlideTimeoutError
from redis.sentinel import MasterNotFoundError

from lib.clients.libraries import base, glide, redis_py
from lib.history import FAIL, UNKNOWN, ClientOpError, classify

REDIS_CASES = [
    ("TimeoutError", "Timeout reading from socket", UNKNOWN),
    ("TimeoutError", "Timeout connecting to server", FAIL),
    ("ConnectionError", "Error 111 connecting to 127.0.0.1:1. Connection refused.", FAIL),
    ("ConnectionError", "Connection closed by server.", UNKNOWN),
    ("ConnectionError", "Error while reading from 127.0.0.1:6379 : (104, 'Connection reset by peer')", UNKNOWN),
    ("ReadOnlyError", "You can't write against a read only replica.", FAIL),
    ("ClusterDownError", "The cluster is down", FAIL),
    ("ClusterError", "TTL exhausted.", FAIL),
    ("BusyLoadingError", "Loading the dataset in memory", FAIL),
    ("SlotNotCoveredError", "Command # 1 (SET k v) failed: Slot 12 is not covered by the cluster.", FAIL),
    ("RedisClusterException", "Redis Cluster cannot be connected. Please provide at least one reachable node", FAIL),
]


@pytest.mark.parametrize("errors", [redis.exceptions, valkey.exceptions], ids=["redis", "valkey"])
@pytest.mark.parametrize("class_name,message,outcome", REDIS_CASES, ids=[c[1][:30] for c in REDIS_CASES])
def test_a_redis_py_or_valkey_py_error_is_translated_to_its_outcome(errors, class_name, message, outcome):
    class_name = class_name.replace("Redis", "Valkey") if errors is valkey.exceptions else class_name
    exc = getattr(errors, class_name)(message)
    translated = redis_py.translate(exc, [], errors)
    assert (translated.outcome, translated.error_type) == (outcome, class_name), (
        f"{class_name}({message!r}) should be {outcome}, got {translated.outcome} ({translated.error_type})")


def test_a_sentinel_with_no_master_is_a_fail():
    translated = redis_py.translate(MasterNotFoundError("No master found for 'myvalkey'"), [], redis.exceptions)
    assert (translated.outcome, translated.error_type) == (FAIL, "MasterNotFoundError"), translated


def test_a_retried_write_that_first_timed_out_is_unknown_even_if_its_last_attempt_was_refused():
    timed_out = redis.exceptions.TimeoutError("Timeout reading from socket")
    refused = redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")
    translated = redis_py.translate(refused, [timed_out, refused], redis.exceptions)
    assert translated.outcome == UNKNOWN, f"the first attempt may have been applied: {translated}"
    assert translated.error_type == "ConnectionError", translated.error_type
    assert "(attempts: TimeoutError, ConnectionError)" in str(translated), str(translated)
    assert classify(translated) == UNKNOWN, "the history must classify it by its outcome"


class RetryingFakeClient:
    """A client that retries a SET itself, as redis-py does, calling _send_command_parse_response per attempt."""

    def __init__(self, errors: list[BaseException]):
        self.errors = errors

    def _send_command_parse_response(self):
        raise self.errors.pop(0)

    def set(self, key, value):
        for _ in range(2):
            try:
                return self._send_command_parse_response()
            except redis.exceptions.ConnectionError as exc:
                last = exc
        raise last


def test_the_stock_client_judges_a_write_by_every_attempt_the_library_hid():
    fake = RetryingFakeClient([redis.exceptions.ConnectionError("Connection closed by server."),
                               redis.exceptions.ConnectionError("Error 111 connecting to h:1. Connection refused.")])
    attempts = redis_py.AttemptLog()
    assert attempts.watch(fake, redis_py.STANDALONE_ATTEMPT), "the fake has the per-attempt method"
    client = redis_py.StockClient("redis-py", "1", [], fake, redis.exceptions, redis_py.CAUGHT, attempts,
                                  redis_py.CallCounter(), [])
    with pytest.raises(ClientOpError) as failed:
        client.set("k", "v")
    assert failed.value.outcome == UNKNOWN, f"the dropped first attempt may have been applied: {failed.value}"


def test_the_refresh_counter_counts_calls_of_the_wrapped_method_on_that_instance_only():
    class Manager:
        def initialize(self):
            return "done"

    counted, other = Manager(), Manager()
    counter = redis_py.CallCounter()
    counter.wrap(counted, "initialize")
    assert [counted.initialize(), counted.initialize(), other.initialize()] == ["done"] * 3
    assert counter.count == 2, f"two calls on the wrapped instance, counted {counter.count}"


GLIDE_CASES = [
    (GlideTimeoutError("timed out"), UNKNOWN),
    (GlideConnectionError("Connection dropped"), UNKNOWN),
    (GlideConnectionError("Connection refused (os error 111)"), FAIL),
    (RequestError("An error was signalled by the server: - ReadOnly: You can't write against a read only replica."),
     FAIL),
    (RequestError("An error was signalled by the server: - ClusterDown: The cluster is down"), FAIL),
    (ClosingError("Unable to execute requests; the client is closed. Please create a new client."), FAIL),
]


@pytest.mark.parametrize("exc,outcome", GLIDE_CASES, ids=[str(c[0])[:30] for c in GLIDE_CASES])
def test_a_glide_error_is_translated_to_its_outcome(exc, outcome):
    translated = glide.translate(exc)
    assert (translated.outcome, translated.error_type) == (outcome, type(exc).__name__), (
        f"{type(exc).__name__}({exc}) should be {outcome}, got {translated.outcome}")


def test_glide_asks_the_sentinels_again_after_readonly_a_dropped_connection_or_a_timeout_only():
    readonly = RequestError("An error was signalled by the server: - ReadOnly: You can't write against a replica.")
    assert glide.needs_new_master(readonly) and glide.needs_new_master(GlideTimeoutError("timed out"))
    assert glide.needs_new_master(GlideConnectionError("dropped"))
    assert not glide.needs_new_master(RequestError("WRONGTYPE Operation against a key")), "a data error is no failover"


class FakeGlide:
    def __init__(self, address, fails: list[BaseException]):
        self.address, self.fails, self.closed = address, fails, False

    def set(self, key, value):
        if self.fails:
            raise self.fails.pop(0)

    def close(self):
        self.closed = True


def test_glide_sentinel_rebuilds_on_the_new_master_and_closes_the_old_client(monkeypatch):
    masters = [("h", 1), ("h", 1), ("h", 2)]  # open; after a timeout: the same; after READONLY: moved
    built: list[FakeGlide] = []
    monkeypatch.setattr(glide.SentinelLookup, "master", lambda self: masters.pop(0))

    def connect(self, address):
        fails = [GlideTimeoutError("timed out"), RequestError("... ReadOnly: You can't write ...")] if not built else []
        built.append(FakeGlide(address, fails))
        return built[-1]

    monkeypatch.setattr(glide.GlideSentinelClient, "_connect", connect)
    target = base.SentinelTarget([("127.0.0.1", 1)], "myvalkey", lambda a: a)
    client = glide.GlideSentinelClient(target, "test")
    for outcome in (UNKNOWN, FAIL):
        with pytest.raises(ClientOpError) as failed:
            client.set("k", "v")
        assert failed.value.outcome == outcome, failed.value
    assert [c.address for c in built] == [("h", 1), ("h", 2)], "one rebuild, when the master moved"
    assert built[0].closed and not built[1].closed, "the old client is closed once its last writer left"
    client.set("k", "v")  # the new client takes the next write
    assert client.refreshes() == 3, f"three sentinel lookups (open, timeout, READONLY), got {client.refreshes()}"
    client.close()
    assert built[1].closed


@pytest.mark.parametrize("text,names", [("redis-py,glide", ["redis-py", "glide"]),
                                        (" glide , ours ", ["glide", "ours"]),
                                        ("valkey-py", ["valkey-py"])])
def test_client_names_keeps_the_order_given(text, names):
    assert base.client_names(text) == names


@pytest.mark.parametrize("text,message", [("", "no client named"), ("redis-py,jedis", "unknown client 'jedis'"),
                                          ("glide,glide", "named twice")])
def test_client_names_refuses_what_it_cannot_run(text, message):
    with pytest.raises(ValueError, match=message):
        base.client_names(text)
