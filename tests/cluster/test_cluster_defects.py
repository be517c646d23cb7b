"""Issue 15, cluster side, with fakes: writers that survive cluster exceptions and always stop, operations
judged by every attempt, a migration that names the target as the nodes know it and always ends stable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from conftest import checks_of, run_script  # tests/conftest.py
from lib.checks.cluster_placement import check_connect
from lib.checks.cluster_redirects import check_ask
from lib.checks.result import FAIL as FAIL_STATUS
from lib.cluster_client import RETRIES_PER_CALL, ClusterClient
from lib.description import TestDescription as Description  # not Test*: pytest would collect it
from lib.errors import SetupError
from lib.faults.fault import Fault
from lib.history import FAIL, OK, UNKNOWN, WRITER, Attempts, History
from lib.phases import cluster_failover
from lib.phases.cluster_phases import observe_ask, observe_connect
from lib.suites.cluster import LOOPS
from lib.suites.cluster_rejoin_phase import cluster_ok
from lib.suites.cluster_target_run import cleanup
from lib.topology.cluster_topology import open_slots, own_view, parse_cluster_nodes, shards_of, tag_for_slot
from lib.util import REPO_ROOT, format_endpoint, free_ports, key_namespace
from lib.waits import PollPolicy, wait_until
from lib.workload.workload import ContinuousWriter

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

    def inject(self) -> None:
        FakeClusterClient.broken.set()
        wait_until(lambda: (len(_writer_threads()) == 2, f"{len(_writer_threads())} writers alive"), timeout=10,
                   what="the first of 3 writers to crash")
        raise SetupError("docker kill node-7000 failed: no such container")


def _writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"{WRITER}-loop"]  # lib/workload/workload.OpLoop


def test_one_crashed_writer_does_not_leave_the_others_running(monkeypatch):
    monkeypatch.setattr(cluster_failover, "ClusterClient", FakeClusterClient)
    monkeypatch.setattr(cluster_failover, "WARMUP_OPS", 5)
    FakeClusterClient.created.clear()
    FakeClusterClient.broken.clear()
    seed = FakeClusterClient([("127.0.0.1", 7000)])
    shards = shards_of(parse_cluster_nodes(NODES))
    # The cluster suite's writer per shard only: no stock RedisCluster yardstick, so nothing real is started.
    test = Description("cluster", "cluster", workload=[loop for loop in LOOPS if loop.name == "writer"])
    with pytest.raises((SetupError, RuntimeError)):
        cluster_failover.measure_cluster_failover(test, seed, FailingKill(), shards, lambda: shards[0], "vhc:test:",
                                              History())
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


# ---- 5. a migration names the target as the nodes know it, and is undone from any state ----------

class RecordingNode:
    """A plain client to one fake node: records what is sent to it; MIGRATE can be made to fail."""

    def __init__(self, address, log: list, fail_migrate: bool):
        self.address, self.log, self.fail_migrate = address, log, fail_migrate

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def execute_command(self, *args):
        self.log.append((self.address, args))
        if args[0] == "MIGRATE" and self.fail_migrate:
            raise redis.ResponseError("Target instance replied with error: NOAUTH Authentication required")
        if args[:2] == ("CLUSTER", "GETKEYSINSLOT"):
            return []
        return "OK"


class MigrationCluster:
    """Enough of ClusterClient for SlotMigration: nodes reached at 127.0.0.1 (the host's port mapping),
    known to each other by their container ips, as under compose."""

    def __init__(self, fail_migrate: bool = False):
        self.password, self.log, self.fail_migrate = None, [], fail_migrate

    def reachable(self, node):
        return "127.0.0.1", node.port

    def nodes(self, via=None):
        return parse_cluster_nodes(NODES)

    def node(self, address, timeout=1.0, *, decode=True):
        return RecordingNode(address, self.log, self.fail_migrate)


def test_migrate_names_the_target_as_the_source_knows_it_not_the_hosts_port_mapping():
    from lib.phases.cluster_migration import SlotMigration

    client = MigrationCluster()
    shards = shards_of(parse_cluster_nodes(NODES))
    SlotMigration(client, 7, shards[0].primary, shards[1].primary).move_keys(["{t644}:0"])
    ((sent_to, command),) = client.log
    assert sent_to == ("127.0.0.1", 7000), "MIGRATE goes to the source, where this machine reaches it"
    assert command[:3] == ("MIGRATE", "172.18.0.3", 7001), f"the target as the nodes know it: {command}"
    assert not any("127.0.0.1" in str(arg) for arg in command), "no host-side address inside a command"


OPEN_VIEWS = {  # slot 7 half-migrated from a1 (port 7000) to b2 (port 7001), as each of them shows it
    7000: NODES.replace("connected 0-5460", "connected 0-5460 [7->-b2]"),
    7001: NODES.replace("myself,master", "master").replace(
        "b2 172.18.0.3:7001@17001,node-7001 master", "b2 172.18.0.3:7001@17001,node-7001 myself,master").replace(
        "connected 5461-10922", "connected 5461-10922 [7-<-a1]"),
}


class StrandedNode(RecordingNode):
    """away (7001) holds a moved key; every way of moving it back fails (MIGRATE refused, home unreachable)."""

    def execute_command(self, *args):
        if args[:2] == ("CLUSTER", "GETKEYSINSLOT") and self.address[1] == 7001:
            self.log.append((self.address, args))
            return ["{t644}:0"]
        return super().execute_command(*args)

    def pipeline(self, transaction=True):
        node = self

        class Pipe:
            def __init__(self):
                self.queued = []

            def execute_command(self, *args):
                self.queued.append(args)

            def execute(self):
                return [node.execute_command(*args) for args in self.queued]

        return Pipe()

    def exists(self, key):
        raise redis.ConnectionError(f"Error 111 connecting to {self.address[0]}:{self.address[1]}")


class OpenSlotCluster(MigrationCluster):
    def nodes(self, via=None):
        return parse_cluster_nodes(OPEN_VIEWS[via[0][1]] if via else NODES)

    def node(self, address, timeout=1.0, *, decode=True):
        return StrandedNode(address, self.log, fail_migrate=True)


def test_putting_a_slot_back_ends_stable_on_both_nodes_even_when_every_migrate_fails():
    from lib.phases.cluster_migration import MigrationError, put_slot_back

    client = OpenSlotCluster()
    shards = shards_of(parse_cluster_nodes(NODES))
    with pytest.raises(MigrationError, match="MIGRATE the moved keys back failed.*Error 111"):
        put_slot_back(client, 7, shards[0].primary, shards[1].primary, [s.primary for s in shards])
    stable = [address[1] for address, args in client.log if args == ("CLUSTER", "SETSLOT", 7, "STABLE")]
    assert sorted(stable) == [7000, 7001], f"SETSLOT STABLE on both sides, whatever failed: {client.log}"
    first_stable = next(i for i, (_, args) in enumerate(client.log) if args[-1] == "STABLE")
    first_migrate = next(i for i, (_, args) in enumerate(client.log) if args[0] == "MIGRATE")
    assert first_stable < first_migrate, "home is made STABLE first, so that it accepts its keys back"


# ---- 7. clients are closed; cleanup says one line or nothing --------------------------------------

def test_readiness_closes_its_clients(monkeypatch):
    from lib.launcher import readiness

    made = []

    class CountingRedis(redis.Redis):
        def close(self) -> None:
            made.remove(self)
            super().close()

    def client(host, port):
        made.append(CountingRedis(host=host, port=port, retry=Retry(NoBackoff(), 0)))
        return made[-1]

    monkeypatch.setattr(readiness, "_client", client)
    (port,) = free_ports(1)
    stack = type("Stack", (), {"services": {"node-7000": type("S", (), {"kind": "server"})()},
                               "endpoint": lambda self, name: ("127.0.0.1", port),
                               "log_tail": lambda self, name: ""})()
    with pytest.raises(SetupError):
        readiness.cluster_ready(stack, timeout=0.2)
    assert made == [], "every client readiness opened is closed, also when the wait times out"


# ---- on a real local cluster -------------------------------------------------------------------

WRITE_COMMANDS = ("set", "mset", "migrate", "restore", "unlink", "del", "cluster|setslot")


def cluster_client(stack) -> ClusterClient:
    return ClusterClient(stack.endpoints("server"))


def writes_seen(stack) -> dict[str, int]:
    """Calls of every write command on every node (INFO commandstats): unchanged means nothing was written."""
    counts = {}
    for host, port in stack.endpoints("server"):
        with redis.Redis(host=host, port=port, decode_responses=True) as node:
            stats = node.info("commandstats")
        counts.update({f"{port} {c}": stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in WRITE_COMMANDS})
    return counts


def assert_left_as_found(stack) -> None:
    """No slot migrating or importing on any primary, and no key of any cluster run left."""
    with cluster_client(stack) as client:
        for shard in client.shards():
            address = client.reachable(shard.primary)
            me = own_view(client.nodes([address]))
            assert open_slots(me) == {}, f"{format_endpoint(*address)} left with open slots {me.migrating}"
            with client.node(address) as node:
                left = list(node.scan_iter(match="vhc:cluster:*", count=1000))
            assert left == [], f"{len(left)} keys of a run left on {format_endpoint(*address)}: {left[:3]}"


def results(path) -> dict[str, dict]:
    return checks_of(path)


@pytest.mark.integration
def test_a_failed_migrate_fails_moved_and_ask_but_the_slots_are_put_back_and_the_run_goes_on(cluster_stack, tmp_path):
    out = tmp_path / "cluster.json"
    # The nodes have no password: MIGRATE ... AUTH wrong is refused by the target, as with a wrong password.
    proc = run_script("cluster_test.py", "--fault", "none", "--password", "wrong", "--json", str(out),
                      state_dir=cluster_stack.state_dir)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    result = results(out)
    for name in ("moved", "ask"):
        assert result[name]["status"] == "FAIL" and "Target instance replied with error" in result[name]["detail"]
        assert "STABLE on both nodes" in result[name]["detail"] and "NOT put back" not in result[name]["detail"], (
            result[name]["detail"])
    assert result["distribution"]["status"] == "OK", "the checks after a failed migration still ran"
    assert "could not clean up" not in proc.stderr, proc.stderr
    assert_left_as_found(cluster_stack)


@pytest.mark.integration
def test_ctrl_c_during_the_ask_migration_puts_the_slot_back_and_deletes_the_keys(cluster_stack):
    with cluster_client(cluster_stack) as client:
        shards = client.shards()
        source = client.reachable(shards[0].primary)
        slot = shards[0].slots[0][0] + 7  # check_ask's slot
        proc = subprocess.Popen([sys.executable, "app/cluster_test.py", "--fault", "none"], cwd=REPO_ROOT,
                                env=dict(os.environ, VHC_STACK_STATE=str(cluster_stack.state_dir)),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        try:
            wait_until(lambda: (slot in open_slots(own_view(client.nodes([source]))), "slot 7 not migrating yet"),
                       timeout=120, what=f"slot {slot} to be migrating", policy=PollPolicy(first=0.002, cap=0.002),
                       abort=lambda: f"exited with {proc.returncode}" if proc.poll() is not None else None)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130 and "interrupted" in err, err
    assert "Traceback" not in err, err
    assert_left_as_found(cluster_stack)


@pytest.mark.integration
def test_ctrl_c_after_the_kill_starts_the_primary_again_and_deletes_the_keys(cluster_stack):
    """A fault must not outlive the run: Ctrl-C while a primary is down restarts it (then cleanup)."""
    with cluster_client(cluster_stack) as client:
        victim = client.reachable(client.shards()[0].primary)  # the suite kills the primary of slot 0
    proc = subprocess.Popen([sys.executable, "app/cluster_test.py"], cwd=REPO_ROOT,
                            env=dict(os.environ, VHC_STACK_STATE=str(cluster_stack.state_dir), COLUMNS="160"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)

    def answers() -> bool:
        with redis.Redis(host=victim[0], port=victim[1], socket_timeout=0.2, socket_connect_timeout=0.2,
                         retry=Retry(NoBackoff(), 0)) as node:
            try:
                return bool(node.ping())
            except redis.ConnectionError:
                return False

    try:
        wait_until(lambda: (not answers(), "the primary of slot 0 still answers"), timeout=120,
                   what="cluster_test.py to kill the primary of slot 0", transient=(),
                   abort=lambda: f"exited with {proc.returncode}" if proc.poll() is not None else None)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, f"exit {proc.returncode}\n{out[-3000:]}\n{err[-2000:]}"
    assert "undone: SIGKILL" in out, out[-3000:]
    assert "Traceback" not in err, err
    assert answers(), f"{format_endpoint(*victim)} must be running again"
    wait_until(lambda: (_no_run_keys(cluster_stack), "keys of the run still on a primary"), timeout=30,
               what="the interrupted run's keys to be deleted")
    # The module shares this cluster: the restarted node must have rejoined before the next test.
    with cluster_client(cluster_stack) as client:
        wait_until(lambda: cluster_ok(client), timeout=90, what="cluster_state:ok on every node again")


def _no_run_keys(stack) -> bool:
    with cluster_client(stack) as client:
        for shard in client.shards():
            with client.node(client.reachable(shard.primary)) as node:
                if next(node.scan_iter(match="vhc:cluster:*", count=1000), None) is not None:
                    return False
    return True


@pytest.mark.integration
def test_connect_fails_while_a_slot_is_left_migrating(cluster_stack):
    from lib.phases.cluster_migration import SlotMigration, put_slot_back

    with cluster_client(cluster_stack) as client:
        shards = client.shards()
        primaries = [s.primary for s in shards]
        slot = shards[0].slots[0][0] + 11
        try:
            SlotMigration(client, slot, shards[0].primary, shards[1].primary).begin()
            history = History()
            observe_connect(client, shards, history)
            result = check_connect(history)
        finally:
            put_slot_back(client, slot, shards[0].primary, shards[1].primary, primaries)
    assert result.status == FAIL_STATUS, result.detail
    assert f"slot {slot} migrating on" in result.detail and f"slot {slot} importing on" in result.detail, result.detail
    assert "--cluster fix" in result.detail, "the detail says how to close it"
    assert_left_as_found(cluster_stack)


@pytest.mark.integration
def test_cleanup_deletes_keys_on_a_primary_that_is_importing_their_slot(cluster_stack):
    from lib.phases.cluster_migration import SlotMigration, put_slot_back

    with cluster_client(cluster_stack) as client:
        shards = client.shards()
        slot = shards[0].slots[0][0] + 13
        ns = key_namespace("cluster")
        keys = [f"{ns}{{{tag_for_slot(slot)}}}:{i}" for i in range(4)]
        client.call(lambda rc: rc.mset_nonatomic(dict.fromkeys(keys, "x")))
        migration = SlotMigration(client, slot, shards[0].primary, shards[1].primary)
        try:
            migration.begin()
            migration.move_keys(keys[:2])  # now on the importing target, which answers a plain UNLINK with MOVED
            problem = cleanup(client, ns)
            left = []
            for shard in shards:
                with client.node(client.reachable(shard.primary)) as node:
                    left += node.scan_iter(match=f"{ns}*")
        finally:
            put_slot_back(client, slot, shards[0].primary, shards[1].primary, [s.primary for s in shards])
    assert problem is None and left == [], (problem, left)


@pytest.mark.integration
def test_a_graceful_failover_is_undone_afterwards(cluster_stack, tmp_path):
    with cluster_client(cluster_stack) as client:
        before = {s.label: s.primary.node_id for s in client.shards()}
    out = tmp_path / "cluster.json"
    proc = run_script("cluster_test.py", "--fault", "graceful", "--json", str(out), state_dir=cluster_stack.state_dir)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    result = results(out)
    assert result["primary_failure"]["status"] == "OK", result["primary_failure"]["detail"]
    assert result["primary_failure"]["metrics"]["lost"] == 0
    assert result["rejoin"]["status"] == "OK" and "roles put back" in result["rejoin"]["detail"], result["rejoin"]
    with cluster_client(cluster_stack) as client:
        after = {s.label: s.primary.node_id for s in client.shards()}
    assert after == before, "every shard has the primary it had before the run"


@pytest.mark.integration
def test_a_cluster_the_harness_did_not_start_is_refused_before_anything_is_written(cluster_stack, tmp_path):
    port = cluster_stack.endpoints("server")[0][1]
    env = {"VHC_STACK_ROOT": str(tmp_path / "no-stacks"), "VHC_STACK_STATE": ""}  # nothing records this cluster
    before = writes_seen(cluster_stack)
    proc = run_script("cluster_test.py", "--node", f"127.0.0.1:{port}", "--fault", "none", env=env)
    assert proc.returncode == 2 and "refusing to migrate slots" in proc.stderr, proc.stderr
    assert "--allow-destructive" in proc.stderr and proc.stdout == "", proc.stdout
    assert writes_seen(cluster_stack) == before, "refused before the first write"
    proc = run_script("cluster_test.py", "--node", f"127.0.0.1:{port}", "--fault", "none", "--allow-destructive",
                      env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert_left_as_found(cluster_stack)


@pytest.mark.integration
@pytest.mark.parametrize(("args", "expected"), [
    (["--fault", "docker"], "--fault docker"),
    (["--json", "/proc/no/run.json"], "--json /proc/no/run.json"),
    (["--plot", "/proc/no/run.png"], "--plot /proc/no/run.png"),
    (["--host-map", "127.0.0.1=192.0.2.1"], "--host-map 127.0.0.1=HOST"),
])
def test_what_cannot_be_done_is_one_line_and_exit_2_before_the_first_write(cluster_stack, args, expected):
    before = writes_seen(cluster_stack)
    proc = run_script("cluster_test.py", *args, state_dir=cluster_stack.state_dir)
    assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "could not clean up" not in proc.stderr + proc.stdout, "a run that wrote nothing cleans up silently"
    assert writes_seen(cluster_stack) == before, "nothing was written before the refusal"


@pytest.mark.integration
def test_behind_address_translation_ask_is_followed_and_the_plain_client_yardstick_runs(cluster_stack, tmp_path):
    """Nodes announce 127.0.0.1 and are reached as 127.1 (the same address, another name), as compose
    names are reached at 127.0.0.1: the cluster client follows ASK to a node it knows by its announced
    name, and the default redis-py client gets the same address_remap instead of being skipped."""
    with cluster_client(cluster_stack) as client:
        before = {s.label: s.primary.node_id for s in client.shards()}
    out = tmp_path / "cluster.json"
    proc = run_script("cluster_test.py", "--host-map", "127.0.0.1=127.1", "--allow-destructive", "--json", str(out),
                      state_dir=cluster_stack.state_dir)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    result = results(out)
    assert result["ask"]["metrics"]["ask_redirects_during"] >= 1, result["ask"]["detail"]
    failure = result["primary_failure"]["metrics"]
    assert failure["plain_downtime_ms"] is not None and failure["plain_downtime_ms"] >= 1000, failure
    assert failure["lost"] == 0, failure
    assert "roles put back" in result["rejoin"]["detail"], "a kill allowed by --allow-destructive is undone too"
    with cluster_client(cluster_stack) as client:
        assert {s.label: s.primary.node_id for s in client.shards()} == before
    assert_left_as_found(cluster_stack)


@pytest.mark.integration
def test_ask_leaves_alone_a_slot_that_is_already_migrating(cluster_stack):
    from lib.phases.cluster_migration import SlotMigration, put_slot_back

    with cluster_client(cluster_stack) as client:
        shards = client.shards()
        primaries = [s.primary for s in shards]
        slot = shards[0].slots[0][0] + 7  # check_ask's slot, opened by "someone else"
        other = SlotMigration(client, slot, shards[0].primary, shards[2].primary)
        try:
            other.begin()
            history = History()
            observe_ask(client, shards, key_namespace("cluster"), history)
            result = check_ask(history)
            still_open = open_slots(own_view(client.nodes([client.reachable(shards[2].primary)])))
        finally:
            put_slot_back(client, slot, shards[0].primary, shards[2].primary, primaries)
    assert result.status == FAIL_STATUS and "already" in result.detail and "nothing was changed" in result.detail
    assert still_open == {slot: ("importing", shards[0].primary.node_id)}, "the other migration was not touched"
    assert_left_as_found(cluster_stack)
