"""Issue 15, cluster side, with fakes: writers that survive cluster exceptions and always stop, operations
judged by every attempt, a migration that names the target as the nodes know it and always ends stable."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from lib import cluster_failover
from lib.cluster_client import RETRIES_PER_CALL, ClusterClient
from lib.cluster_topology import parse_cluster_nodes, shards_of
from lib.errors import SetupError
from lib.fault import Fault
from lib.waits import wait_until
from lib.workload import FAIL, OK, UNKNOWN, Attempts, ContinuousWriter, History

NODES = """\
a1 172.18.0.2:7000@17000,node-7000 myself,master - 0 0 1 connected 0-5460
b2 172.18.0.3:7001@17001,node-7001 master - 0 0 2 connected 5461-10922
c3 172.18.0.4:7002@17002,node-7002 master - 0 0 3 connected 10923-16383
d4 172.18.0.5:7003@17003,node-7003 slave a1 0 0 1 connected
"""
REFUSED = redis.ConnectionError("Error 111 connecting to 127.0.0.1:7000. Connection refused.")
TIMED_OUT = redis.TimeoutError("Timeout reading from socket")


def ops_when(history: History, count: int) -> list:
    wait_until(lambda: (len(history.snapshot()) >= count, f"{len(history.snapshot())} ops"), timeout=10,
               what=f"{count} recorded operations")
    return history.snapshot()


# ---- 2. the writer survives what RedisCluster raises, and every writer is stopped ----------------

def test_a_slot_not_covered_error_is_an_operation_outcome_not_a_dead_writer():
    def write(key: str, value: str) -> None:
        raise redis.exceptions.SlotNotCoveredError("Command # 1 (SET) slot 7 is not covered by the cluster")

    history = History()
    writer = ContinuousWriter(write, lambda seq: f"k{seq}", history, pause_s=0.001)
    writer.start()
    ops = ops_when(history, 3)
    writer.stop()  # raised RuntimeError("continuous-writer crashed") before the fix
    assert writer.crashed is None
    assert {op.outcome for op in ops} == {FAIL}, "never sent: the client found no node for the slot"
    assert ops[0].error.startswith("SlotNotCoveredError: "), ops[0].error


class FakeClusterClient:
    """Stands in for ClusterClient in cluster_failover: writes succeed; the first client created
    raises a bug (not an operation error) once `broken` is set, so its writer thread crashes."""

    created: list[FakeClusterClient] = []
    broken = threading.Event()

    def __init__(self, seeds, *, password=None, host_map=None):
        self.seeds, self.password = seeds, password
        self.remap = type("Remap", (), {"host_map": dict(host_map or {}), "fallback_host": "127.0.0.1"})()
        self.closed = False
        self.index = len(FakeClusterClient.created)
        FakeClusterClient.created.append(self)

    @property
    def cluster(self):
        return self

    def set(self, key, value):
        if self.index == 1 and FakeClusterClient.broken.is_set():
            raise ValueError("a bug in the writer")
        return True

    def call(self, operation, attempts=None):
        return operation(self)

    def close(self) -> None:
        self.closed = True


class FailingKill(Fault):
    """A kill that cannot be done (e.g. docker kill failed) once the first writer has crashed."""

    description = "SIGKILL node-7000 (fake)"
    by_hand = True  # no plain redis-py client: nothing real is started

    def inject(self) -> None:
        FakeClusterClient.broken.set()
        wait_until(lambda: (len(_writer_threads()) == 2, f"{len(_writer_threads())} writers alive"), timeout=10,
                   what="the first of 3 writers to crash")
        raise SetupError("docker kill node-7000 failed: no such container")


def _writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "continuous-writer"]


def test_one_crashed_writer_does_not_leave_the_others_running(monkeypatch):
    monkeypatch.setattr(cluster_failover, "ClusterClient", FakeClusterClient)
    monkeypatch.setattr(cluster_failover, "WARMUP_OPS", 5)
    FakeClusterClient.created.clear()
    FakeClusterClient.broken.clear()
    seed = FakeClusterClient([("127.0.0.1", 7000)])
    shards = shards_of(parse_cluster_nodes(NODES))
    with pytest.raises((SetupError, RuntimeError)):
        cluster_failover.run_cluster_failover(seed, FailingKill(), shards, lambda: shards[0], "vhc:test:")
    assert _writer_threads() == [], "every writer is stopped, not just the ones before the crashed one"
    assert all(c.closed for c in FakeClusterClient.created[1:]), "every writer's client is closed"


# ---- 3. an operation is judged by all its attempts -----------------------------------------------

@pytest.mark.parametrize(("errors", "final", "outcome"), [
    ([TIMED_OUT], REFUSED, UNKNOWN),  # timed out (may be applied), then refused: unknown, not failed
    ([REFUSED, REFUSED], REFUSED, FAIL),
    ([REFUSED], None, OK),
    ([], redis.exceptions.ResponseError("WRONGTYPE"), FAIL),
    ([REFUSED], ConnectionResetError("reset"), UNKNOWN),
])
def test_attempts_make_an_op_unknown_when_any_attempt_may_have_been_applied(errors, final, outcome):
    attempts = Attempts()
    for error in errors:
        attempts.failed(error)
    assert attempts.outcome(final) == outcome


class ScriptedCluster:
    """A RedisCluster whose SET fails with the given errors, one per call, then succeeds."""

    def __init__(self, errors: list[Exception]):
        self.errors = list(errors)
        self.calls = 0

    def set(self, key, value):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return True

    def close(self) -> None:
        pass


def scripted_client(errors: list[Exception]) -> tuple[ClusterClient, ScriptedCluster]:
    client = ClusterClient([("127.0.0.1", 7000)])
    fake = ScriptedCluster(errors)
    client._cluster = fake  # our own client's connection slot: no server behind this test
    return client, fake


def test_a_cluster_write_that_timed_out_and_then_was_refused_is_unknown():
    client, fake = scripted_client([TIMED_OUT] + [REFUSED] * RETRIES_PER_CALL)
    history = History()
    writer = ContinuousWriter(lambda key, value, attempts: client.call(lambda rc: rc.set(key, value), attempts),
                              lambda seq: f"k{seq}", history, pause_s=0.001, with_attempts=True)
    writer.start()
    first = ops_when(history, 1)[0]
    writer.stop()
    assert fake.calls >= 1 + RETRIES_PER_CALL
    assert first.outcome == UNKNOWN, f"the first attempt timed out and may have written: {first}"
    assert "attempts: TimeoutError, ConnectionError, ConnectionError" in first.error, first.error


def test_each_failed_attempt_of_a_call_reaches_the_recorder_once():
    client, _ = scripted_client([TIMED_OUT, REFUSED])
    attempts = Attempts()
    assert client.call(lambda rc: rc.set("k", "v"), attempts) is True
    assert attempts.errors == [TIMED_OUT, REFUSED]
    assert attempts.outcome(None) == OK


def test_a_call_that_never_succeeds_raises_its_last_error_with_every_attempt_recorded():
    client, _ = scripted_client([TIMED_OUT, REFUSED, REFUSED, REFUSED])
    attempts = Attempts()
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError) as caught:
        client.call(lambda rc: rc.set("k", "v"), attempts)
    assert time.monotonic() - started < 1
    assert len(attempts.errors) == 1 + RETRIES_PER_CALL
    assert attempts.outcome(caught.value) == UNKNOWN
