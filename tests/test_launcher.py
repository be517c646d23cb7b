"""The local launcher: refuses busy ports, kill/start like docker, and leaves nothing behind."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import pytest

from conftest import assert_all_stopped, recorded_pids
from lib.errors import SetupError
from lib.launcher.local_stack import LocalStack
from lib.topology.topology import load_topology
from lib.util import REPO_ROOT, free_ports
from lib.waits import wait_until

pytestmark = pytest.mark.integration


def test_busy_port_is_refused_with_a_clear_message(tmp_path):
    topology = load_topology("ha")
    ports = free_ports(6)
    with socket.socket() as busy:
        # SO_REUSEADDR as servers bind: a free port may still have TIME_WAIT pairs from an earlier test
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", ports[0]))
        busy.listen()
        stack = LocalStack(topology, tmp_path / "s", dict(zip([6379, 6380, 6381, 26379, 26380, 26381], ports,
                                                               strict=True)))
        with pytest.raises(SetupError, match=f"port {ports[0]} for valkey-master is busy"):
            stack.up(timeout=30)
    assert stack.running() == []


def test_kill_and_start_like_docker(ha_stack):
    import redis

    replica = redis.Redis(port=ha_stack.service("valkey-replica1").port, decode_responses=True)
    old_pid = ha_stack.kill("valkey-replica1")
    with pytest.raises(redis.ConnectionError):
        replica.ping()
    new_pid = ha_stack.start("valkey-replica1")
    assert new_pid != old_pid and replica.ping()
    wait_until(lambda: (replica.info("replication")["master_link_status"] == "up", "link"), timeout=30,
               what="the restarted replica to resync")


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_stopping_the_launcher_stops_the_stack(tmp_path, how):
    """stack.py run, interrupted (Ctrl-C, SIGTERM) or killed outright, leaves no server running."""
    flag = tmp_path / "command-started"
    state_dir = tmp_path / "state"
    launcher = subprocess.Popen(
        [sys.executable, "app/stack.py", "run", "ha", "--free-ports", "--state-dir", str(state_dir), "--",
         sys.executable, "-c", f"import pathlib, time; pathlib.Path({str(flag)!r}).touch(); time.sleep(120)"],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: (flag.exists(), "not yet"), timeout=60, what="the stack to be up and the command started",
                   abort=lambda: None if launcher.poll() is None else f"launcher exited {launcher.returncode}")
        pids = recorded_pids(LocalStack.load(state_dir))
        assert len(pids) == 6
        launcher.send_signal(how)
        launcher.wait(timeout=30)
        wait_until(lambda: (not any(_alive(p) for p in pids), f"alive: {[p for p in pids if _alive(p)]}"),
                   timeout=15, what="every server to be gone")
        assert_all_stopped(pids)
    finally:
        if launcher.poll() is None:
            launcher.kill()


def _alive(pid: int) -> bool:
    from lib.launcher import process

    return process.is_alive(pid)
