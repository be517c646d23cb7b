"""Issue 15, HA side: each defect with the test that shows it fixed (unit tests with fakes first, then
integration tests on real local stacks on free ports)."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

import ha_test
from conftest import checks_in, checks_of, ha_downtime_limit_ms, run_script
from lib.clients.sentinel_events import SentinelEvents, _Subscription
from lib.errors import SetupError
from lib.faults import fault as fault_module
from lib.faults import nodes as nodes_module
from lib.faults.fault import FaultContext, Node, WaitNotice
from lib.faults.kill import Kill
from lib.faults.manual import Manual
from lib.faults.nodes import DockerNode, container_for
from lib.ha_client import HAClient
from lib.history import PLAIN, UNKNOWN, Attempts, History
from lib.launcher import discovery
from lib.launcher.ownership import Ownership
from lib.phases.ha_plain_client import RemappedSentinel, plain_sentinel_client
from lib.suites import ha as ha_suite
from lib.suites import ha_ownership, ha_session
from lib.suites.cli import describe
from lib.util import REPO_ROOT, free_ports
from lib.waits import wait_until
from lib.workload.workload import ContinuousWriter
from test_ha_integration import assert_graceful_loss_reported
from unit.fakes import RecordingOutput

APP = REPO_ROOT / "app"


# ---- 1. destructive actions only on the harness's own servers ----------------------------------

class FakeDocker:
    """lib.faults.nodes.docker: `ps --filter publish=PORT` lists one unrelated container publishing the port."""

    def __init__(self, names: str = "someone-elses-redis"):
        self.names, self.calls = names, []

    def __call__(self, *args: str) -> str:
        self.calls.append(args)
        if "--filter" in args:
            return self.names + "\n"
        return f"{self.names} 0.0.0.0:6379->6379/tcp\n"  # the unfiltered `ps` of the old lookup


def test_container_for_never_picks_a_container_for_a_remote_ip(monkeypatch):
    docker = FakeDocker()
    monkeypatch.setattr(nodes_module, "docker", docker)
    monkeypatch.setattr(nodes_module, "ownership", lambda host, port: Ownership(False, "not ours"))
    assert container_for("10.0.0.5", 6379) is None, "a remote IP must never map to a local container"
    assert docker.calls == [], f"docker was asked about a remote address: {docker.calls}"


def test_container_for_skips_a_local_container_that_is_not_of_our_compose_files(monkeypatch):
    monkeypatch.setattr(nodes_module, "docker", FakeDocker())
    monkeypatch.setattr(nodes_module, "ownership", lambda host, port: Ownership(False, "not ours"))
    assert container_for("127.0.0.1", 6379) is None


def test_container_for_returns_our_container_by_port_or_by_name(monkeypatch):
    ours = {"valkey-master"}
    monkeypatch.setattr(nodes_module, "docker", FakeDocker("valkey-master"))
    monkeypatch.setattr(nodes_module, "ownership", lambda host, port: Ownership(host in ours, host))
    assert container_for("127.0.0.1", 6379) == "valkey-master"
    assert container_for("valkey-master", 6379) == "valkey-master"
    assert container_for("valkey-elsewhere", 6379) is None, "a name must be that container, and ours"


class FakeNodeInfo:
    def __init__(self, info: dict):
        self._info = info
        self.closed = False

    def info(self, section: str = "") -> dict:
        return self._info

    def sentinel_slaves(self, name: str) -> list[dict]:
        return [{"ip": "127.0.0.1", "port": 6380}]

    def close(self) -> None:
        self.closed = True


class WriteTrackingHA:
    """HAClient's surface for prepare_run (everything before the first write); any write path is recorded."""

    def __init__(self):
        self.sentinel_addresses = [("127.0.0.1", 26379)]
        self.master_name, self.password, self.sentinel_password = "myvalkey", None, None
        self.writes: list[str] = []
        self.nodes: list[FakeNodeInfo] = []
        self.switches_followed = 0

    def check_reachable(self):
        return ("127.0.0.1", 6379)

    def remap(self, address):
        return address

    def announced_master(self):
        return ("127.0.0.1", 6379)

    def node(self, address, timeout: float = 1.0, *, sentinel: bool = False):
        node = FakeNodeInfo({"server_name": "valkey", "valkey_version": "9.0.0"})
        self.nodes.append(node)
        return node

    def master(self):
        self.writes.append("master()")
        raise AssertionError("a write was attempted before the ownership check")

    def sentinel_views(self):
        return {"127.0.0.1:26379": "127.0.0.1:6379"}


@pytest.mark.parametrize("fault", ["graceful", "auto"])
def test_a_refused_fault_is_refused_before_any_write(monkeypatch, fault):
    asked = []

    def refuse(addresses, *, allowed, action):
        asked.append((addresses, allowed, action))
        raise SetupError(f"refusing to {action}: not ours")

    monkeypatch.setattr(ha_ownership, "require_owned", refuse)
    monkeypatch.setattr(fault_module, "node_control", lambda *a, **k: DockerNode("valkey-master"))
    ha = WriteTrackingHA()
    args = ha_suite.HASuite().build_parser().parse_args(["--fault", fault])
    session = ha_session.Session("vhc:ha:test:")
    with pytest.raises(SetupError, match="refusing to run"):
        ha_suite.prepare_run(args, ha, ha_session.Target(ha.sentinel_addresses, "test"), session, RecordingOutput())
    assert asked and asked[0][1] is False, "the ownership check must run, without --allow-destructive"
    assert ha.writes == [] and session.wrote is False and session.fault is None
    assert all(node.closed for node in ha.nodes), "every client prepare_run opened must be closed"


def test_allow_destructive_is_an_option_of_ha_test():
    assert ha_suite.HASuite().build_parser().parse_args(["--allow-destructive"]).allow_destructive is True
    assert ha_suite.HASuite().build_parser().parse_args([]).allow_destructive is False


# ---- 3. one-line errors, before any server is touched ------------------------------------------

@pytest.mark.parametrize("flag", ["--json", "--plot"])
def test_unwritable_output_is_refused_before_any_server_is_asked(flag):
    if flag == "--plot":
        pytest.importorskip("matplotlib")
    port = free_ports(1)[0]  # nothing listens: if the sentinels were asked first, that error would come
    with pytest.raises(SetupError, match=f"^{flag} /proc/vhc/out"):
        ha_test.main([flag, "/proc/vhc/out.x", "--sentinel", f"127.0.0.1:{port}", "--fault", "none"])


def test_an_unreachable_sentinel_prints_no_cleanup_block(capsys):
    port = free_ports(1)[0]
    with pytest.raises(SetupError, match="no sentinel reachable"):
        ha_test.main(["--sentinel", f"127.0.0.1:{port}", "--fault", "none"])
    out = capsys.readouterr()
    assert "clean up" not in out.out + out.err, f"a run that wrote nothing must clean up silently:\n{out.out}"


def test_a_failed_cleanup_is_one_line():
    class NoMaster:
        def node(self, address):
            raise AssertionError("no master was found: no node to connect to")

        def master_address(self):
            raise redis.sentinel.MasterNotFoundError("No master found for 'myvalkey' : "
                                                     + "\n".join(f"Redis<sentinel {i}> - Error 111" for i in range(16)))

    line = ha_session.cleanup(NoMaster(), "vhc:ha:x:")
    assert line is not None and "\n" not in line and len(line) <= 200, line
    assert line.startswith("could not clean up keys vhc:ha:x:*: MasterNotFoundError"), line


# ---- 4. library code does not print; restore waits; the event recorder backs off ---------------

# Every library module; lib/report/ is the presentation layer the entry points render with.
LIBRARY_MODULES = sorted(str(p.relative_to(APP)) for p in (APP / "lib").rglob("*.py")
                         if p.parent.name != "report")


@pytest.mark.parametrize("module", LIBRARY_MODULES)
def test_library_modules_do_not_print(module):
    tree = ast.parse((APP / module).read_text())
    printing = [f"line {node.lineno}" for node in ast.walk(tree) if isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Name) and node.func.id in ("print", "Live"))
        or (isinstance(node.func, ast.Attribute) and node.func.attr == "print"))]
    imports_console = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                       and any(alias.name in ("console", "Live") for alias in n.names)]
    assert not printing and not imports_console, f"{module} prints at {printing}, imports console at {imports_console}"


def test_manual_kill_reports_through_its_callback_and_prints_nothing(capsys, monkeypatch):
    answers = iter([True, True, False, True])
    monkeypatch.setattr("lib.faults.manual.answers", lambda address, password, timeout: next(answers))
    notices: list[WaitNotice] = []
    master = Node(("127.0.0.1", 6379), ("127.0.0.1", 6379))
    ctx = FaultContext("sentinel", "ha", "the master", master, [], primaries=[master],
                       options={"manual_timeout": 5}, notify=notices.append,
                       live_view=lambda remaining: f"view {remaining:.0f}")
    kill = Manual(ctx, "python app/stack.py kill valkey-master", "python app/stack.py start valkey-master")
    kill.inject()
    assert kill.heal(5) is True
    assert capsys.readouterr().out == ""
    phases = [n.phase for n in notices]
    assert phases[0] == "kill" and "killed" in phases and phases[-1] == "restart", phases
    assert "Now kill the master 127.0.0.1:6379" in notices[0].message and notices[0].view == "view 5"
    assert "python app/stack.py start valkey-master" in notices[-1].message


def test_docker_heal_waits_until_the_server_answers_ping(monkeypatch):
    docker_calls, pings = [], iter([False, False, True])
    monkeypatch.setattr(nodes_module, "docker", lambda *args: docker_calls.append(args) or "")
    monkeypatch.setattr(nodes_module, "server_answers", lambda address: next(pings))
    kill = Kill(DockerNode("valkey-master", ("127.0.0.1", 6379)), ("127.0.0.1", 6379))
    assert kill.heal(10) is True
    assert docker_calls == [("start", "valkey-master")]
    assert next(pings, "used up") == "used up", "heal returned before the server answered PING"


def test_docker_heal_reports_a_server_that_never_answers(monkeypatch):
    monkeypatch.setattr(nodes_module, "docker", lambda *args: "")
    monkeypatch.setattr(nodes_module, "server_answers", lambda address: False)
    assert Kill(DockerNode("valkey-master", ("127.0.0.1", 6379)), ("127.0.0.1", 6379)).heal(0.1) is False


class DeadPubSub:
    """A subscription whose sentinel is down: every read fails at once."""

    def __init__(self):
        self.reads = 0

    def get_message(self, timeout: float = 0.0):
        self.reads += 1
        raise redis.ConnectionError("Error 111 connecting: Connection refused.")

    def close(self) -> None:
        pass


def test_event_recorder_backs_off_while_the_sentinels_are_down():
    now = [100.0]
    events = SentinelEvents([], History(), clock=lambda: now[0])
    dead = DeadPubSub()
    events._subscriptions = [_Subscription(dead)]
    pauses = [events.poll_once()]
    assert dead.reads == 1 and pauses[0] > 0, "with every sentinel down the loop must pause, not spin"
    assert events.poll_once() > 0 and dead.reads == 1, "a sentinel that just failed is not read again at once"
    for _ in range(8):
        now[0] += pauses[-1]
        pauses.append(events.poll_once())
    assert dead.reads == 9
    assert pauses == sorted(pauses) and pauses[-1] > pauses[0] * 4, f"the pause must grow: {pauses}"
    assert pauses[-1] <= 0.5, f"a sentinel that comes back is read again within 0.5 s: {pauses}"


# ---- 5. the stock redis-py yardstick runs when addresses are remapped --------------------------

class FakeSentinelNode:
    """A sentinel as redis-py's Sentinel sees it: SENTINEL MASTERS announcing a compose service name."""

    def sentinel_masters(self):
        return {"myvalkey": {"ip": "valkey-master", "port": 6379, "is_master": True, "is_sdown": False,
                             "is_odown": False, "num-other-sentinels": 2}}

    def close(self) -> None:
        pass


def test_remapped_sentinel_resolves_through_the_remap_and_is_otherwise_stock():
    remap = {"valkey-master": "127.0.0.1"}
    sentinel = RemappedSentinel([("127.0.0.1", 1)], lambda a: (remap.get(a[0], a[0]), a[1]))
    sentinel.sentinels = [FakeSentinelNode()]
    assert sentinel.discover_master("myvalkey") == ("127.0.0.1", 6379)
    master = sentinel.master_for("myvalkey")
    assert type(master.connection_pool).__name__ == "SentinelConnectionPool", "the pool must be redis-py's own"
    assert master.connection_pool.get_master_address() == ("127.0.0.1", 6379)
    stock = Sentinel([("127.0.0.1", 1)]).master_for("myvalkey")
    assert settings(master) == settings(stock), "connection settings (timeouts, retries) must be redis-py's defaults"


def settings(client: redis.Redis) -> dict:
    """The pool's connection settings: values, and the type of each object (a Retry, a handler)."""
    return {key: value if isinstance(value, int | float | str | bool | None) else type(value).__name__
            for key, value in client.connection_pool.connection_kwargs.items()}


def test_plain_client_runs_when_the_announced_addresses_need_a_remap():
    class ComposeHA:
        sentinel_addresses = [("127.0.0.1", 1)]
        master_name, password, sentinel_password = "myvalkey", None, None

        @staticmethod
        def remap(address):
            return ("127.0.0.1", address[1])

        @staticmethod
        def announced_master():
            return ("valkey-master", 6379)

    plain = next(loop for loop in ha_suite.LOOPS if loop.name == "plain")
    history = History()
    probe = plain_sentinel_client(ComposeHA(), "vhc:ha:test:plain", history, plain)
    assert probe is not None, "the stock client must run on compose too (remapped addresses)"
    assert (probe.history, probe.process, probe.interval_s) == (history, PLAIN, plain.pause_s), \
        "it records into the run's history as the plain redis-py process, at the declared loop's rate"
    probe.close()


# ---- the writer judges an op by all its attempts (lib.history.Attempts) ---------------------------

def test_a_write_whose_first_attempt_timed_out_and_retry_was_refused_is_unknown():
    ha = HAClient([("127.0.0.1", free_ports(1)[0])], "myvalkey")  # nothing listens: no switch listener
    errors = [redis.TimeoutError("Timeout reading from socket"),
              redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
              redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")]

    def next_error(master: redis.Redis) -> bool:
        raise errors.pop(0)

    def write(key: str, value: str, attempts: Attempts) -> bool:
        return ha.call(next_error, attempts)

    try:
        op = ContinuousWriter(write, lambda seq: f"k{seq}", History(), with_attempts=True).attempt(0)
    finally:
        ha.close()
    assert errors == [], "call() must make 1 + RETRIES_PER_CALL attempts"
    assert op.outcome == UNKNOWN, f"the timed-out attempt may have been applied: {op.outcome} ({op.error})"


# ---- 6. a corrupt stack record is an error, not ignored ----------------------------------------

def test_a_corrupt_state_file_is_a_one_line_error_for_ha_test_and_the_fault(tmp_path, monkeypatch):
    (tmp_path / "state.json").write_text("{ not json")
    monkeypatch.setenv("VHC_STACK_STATE", str(tmp_path))
    monkeypatch.delenv("VHC_SENTINELS", raising=False)
    with pytest.raises(SetupError, match="state.json") as raised:
        args = ha_suite.HASuite().build_parser().parse_args([])
        ha_suite.resolve_target(describe(args, "ha", "sentinel", ha_suite.LOOPS))
    assert "\n" not in str(raised.value)
    with pytest.raises(SetupError, match="state.json"):
        discovery.stack_serving("ha", ("127.0.0.1", 6379))


def test_a_node_on_another_address_is_never_a_local_stack_service_whatever_its_port(tmp_path, monkeypatch):
    """--node 127.0.0.2:PORT once got the local stack's node on 127.0.0.1:PORT SIGKILLed."""
    class Recorded:
        topology = type("T", (), {"name": "cluster"})()

        @staticmethod
        def service_at(port: int) -> str | None:
            return "node-7000" if port == 21610 else None

    (tmp_path / "state.json").write_text("{}")
    monkeypatch.setenv("VHC_STACK_STATE", str(tmp_path))
    monkeypatch.setattr(discovery.LocalStack, "load", staticmethod(lambda state_dir: Recorded()))
    for here in ("127.0.0.1", "127.1", "localhost"):
        assert discovery.stack_serving("cluster", (here, 21610))[1] == "node-7000", f"{here} is 127.0.0.1"
    for elsewhere in ("127.0.0.2", "10.0.0.5", "node-7000"):
        assert discovery.stack_serving("cluster", (elsewhere, 21610)) is None, f"{elsewhere} matched by port"


# ---- integration: real local stacks on free ports ----------------------------------------------

def sentinel_args(stack) -> list[str]:
    return [arg for address in stack.endpoints("sentinel") for arg in ("--sentinel", f"127.0.0.1:{address[1]}")]


def foreign_env(tmp_path) -> dict[str, str]:
    """The stack is not findable by the harness: no $VHC_STACK_STATE, an empty stack root."""
    root = tmp_path / "no-stacks-here"
    root.mkdir(exist_ok=True)
    return {"VHC_STACK_ROOT": str(root), "VHC_STACK_STATE": ""}


def node_client(port: int, timeout: float = 2.0) -> redis.Redis:
    """One attempt per command: redis-py 8's default retries would hide a dead node for ~4 s."""
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=timeout, socket_connect_timeout=timeout,
                       retry=Retry(NoBackoff(), 0), decode_responses=True)


def announced_master(stack) -> int:
    sentinel = node_client(stack.endpoints("sentinel")[0][1])
    try:
        return int(sentinel.sentinel_get_master_addr_by_name("myvalkey")[1])
    finally:
        sentinel.close()


def harness_keys(stack) -> dict[str, int]:
    counts = {}
    for name, svc in stack.services.items():
        if svc.kind != "server":
            continue
        client = node_client(svc.port)
        try:
            counts[name] = sum(1 for _ in client.scan_iter(match="vhc:ha:*", count=500))
        except redis.RedisError:
            counts[name] = -1  # not answering
        finally:
            client.close()
    return counts


def wait_no_harness_keys(stack, timeout: float = 30) -> None:
    def no_keys_left() -> tuple[bool, str]:
        seen = harness_keys(stack)
        return all(n == 0 for n in seen.values()), f"vhc:ha:* keys per node: {seen}"

    wait_until(no_keys_left, timeout=timeout, what="no vhc:ha:* key on any node")


@pytest.mark.integration
def test_a_fault_on_servers_the_harness_did_not_start_is_refused_before_anything_is_written(ha_stack, tmp_path):
    master_port = announced_master(ha_stack)
    proc = run_script("ha_test.py", *sentinel_args(ha_stack), "--fault", "graceful",
                      env=foreign_env(tmp_path), timeout=60)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr
    assert proc.stderr.startswith("error: refusing to run SENTINEL FAILOVER"), proc.stderr
    assert "--allow-destructive" in proc.stderr and "Traceback" not in proc.stderr
    assert harness_keys(ha_stack) == {name: 0 for name in harness_keys(ha_stack)}, "a refusal must write nothing"
    assert announced_master(ha_stack) == master_port, "a refusal must not fail over"


@pytest.mark.integration
def test_graceful_failover_with_allow_destructive_puts_the_original_master_back(ha_stack, tmp_path):
    master_port = announced_master(ha_stack)
    replicas = [svc.port for svc in ha_stack.services.values() if svc.kind == "server" and svc.port != master_port]
    out = tmp_path / "ha.json"
    proc = run_script("ha_test.py", *sentinel_args(ha_stack), "--fault", "graceful", "--allow-destructive",
                      "--json", str(out), env=foreign_env(tmp_path), timeout=240)
    report = checks_of(out)
    for name in ("crud", "master_kill", "new_master", "replica_sync"):
        assert report[name]["status"] == "OK", (name, report[name]["detail"])
    assert_graceful_loss_reported(report, proc.returncode)
    assert report["roles_restored"]["status"] == "OK", (report["roles_restored"], proc.stdout[-3000:])
    assert announced_master(ha_stack) == master_port, "the original master must be master again"
    for port in replicas:
        client = node_client(port)
        try:
            assert client.config_get("replica-priority")["replica-priority"] == "100", f"priority of {port}"
            assert client.info("replication")["role"] == "slave"
        finally:
            client.close()
    wait_no_harness_keys(ha_stack)  # the DELs reach the replicas asynchronously


@pytest.mark.integration
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_after_the_kill_restarts_the_master_and_deletes_the_keys(ha_stack, signum):
    master = ha_stack.service("valkey-master")
    env = dict(os.environ, VHC_STACK_STATE=str(ha_stack.state_dir), COLUMNS="160")
    proc = subprocess.Popen([sys.executable, "app/ha_test.py"], cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def killed() -> tuple[bool, str]:
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(f"ha_test.py ended (code {proc.returncode}) before the master was seen "
                                     f"dead:\n{out[-3000:]}\n{err[-2000:]}")
            client = node_client(master.port, timeout=0.2)
            try:
                client.ping()
                return False, "the master still answers"
            except redis.ConnectionError:
                return True, "the master is down"
            finally:
                client.close()

        wait_until(killed, timeout=90, what="ha_test.py to kill the master", transient=())
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, f"exit {proc.returncode}\n{stdout[-3000:]}\n{stderr[-2000:]}"
    assert "undone: SIGKILL valkey-master" in stdout, stdout[-3000:]
    assert "Traceback" not in stderr, stderr
    back = node_client(master.port)
    try:
        assert back.ping(), "the killed master must be running again"
    finally:
        back.close()
    wait_no_harness_keys(ha_stack)


@pytest.mark.integration
def test_a_sentinel_flag_pointing_at_a_data_node_is_a_one_line_error(ha_stack):
    proc = run_script("ha_test.py", "--sentinel", f"127.0.0.1:{ha_stack.service('valkey-master').port}",
                      "--fault", "none", timeout=60)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr
    assert "is not a sentinel" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.fixture(scope="module")
def in_process_run(tmp_path_factory):
    """ha_test.main() in this process on its own stack, with every redis.Redis it creates tracked, and the
    announced addresses remapped (--host-map 127.0.0.1=localhost) as on Docker Compose."""
    from conftest import running_stack

    created: list[redis.Redis] = []
    original = redis.Redis

    class Tracked(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.closed_by_us = False
            created.append(self)

        def close(self) -> None:
            self.closed_by_us = True
            super().close()

    tmp = tmp_path_factory.mktemp("in-process")
    with running_stack("ha", tmp / "ha") as stack:
        out = tmp / "ha.json"
        redis.Redis = Tracked  # type: ignore[misc]
        previous = os.environ.get("VHC_STACK_STATE")
        os.environ["VHC_STACK_STATE"] = str(stack.state_dir)
        try:
            code = ha_test.main(["--host-map", "127.0.0.1=localhost", "--json", str(out)])
        finally:
            redis.Redis = original  # type: ignore[misc]
            if previous is None:
                os.environ.pop("VHC_STACK_STATE", None)
            else:
                os.environ["VHC_STACK_STATE"] = previous
        yield code, json.loads(out.read_text()), created


@pytest.mark.integration
def test_an_in_process_run_closes_every_client_and_measures_the_stock_client_behind_a_remap(in_process_run):
    """One run (the module fixture), two properties. One test, not two: make test hands a module's tests out
    in pairs (tests/conftest.py), and two tests could land on two workers and run the failover twice."""
    code, report, created = in_process_run
    assert code in (0, 1), code
    # A client that never connected holds no socket: only clients that opened a connection must be closed.
    connected = [c for c in created if c.connection_pool._created_connections]  # redis-py 8 ConnectionPool
    left_open = [f"{c.connection_pool.connection_kwargs.get('host')}:{c.connection_pool.connection_kwargs.get('port')}"
                 for c in connected if not c.closed_by_us]
    assert connected and not left_open, f"{len(left_open)} of {len(connected)} clients never closed: {left_open[:10]}"

    scenarios = checks_in(report)
    reconnect = scenarios["reconnect"]["metrics"]
    assert reconnect["plain_downtime_ms"] is not None, f"the plain redis-py client did not run: {reconnect}"
    assert 1000 <= reconnect["plain_downtime_ms"] <= ha_downtime_limit_ms(scenarios["master_kill"]["metrics"]), \
        (reconnect, scenarios["master_kill"]["detail"])
    assert scenarios["master_kill"]["status"] == "OK", scenarios["master_kill"]
