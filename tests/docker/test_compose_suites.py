"""Every suite against its compose stack, run exactly as the README's Docker sections show.

The faults are real: `docker kill` (by the suite with --fault auto, or by this test as a person
would with --fault manual), then `docker start`. After each run no harness key is left on any
server, and the compose stack is removed with nothing left behind (checked by the fixtures).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import redis

from conftest import run_script  # tests/conftest.py
from lib.launcher.compose_stack import image_settings
from lib.util import REPO_ROOT
from lib.waits import wait_until

HA_DATA_PORTS = (6379, 6380, 6381)
CLUSTER_PORTS = tuple(range(7000, 7006))


def user_env(tmp_path: Path) -> dict[str, str]:
    """No local stack may be found instead of the compose one: an empty stack root."""
    return {"VHC_STACK_ROOT": str(tmp_path / "no-local-stacks")}


def scenarios(path: Path) -> dict[str, dict]:
    return {s["scenario"]: s for s in json.loads(path.read_text())["scenarios"]}


def statuses(result: dict[str, dict]) -> dict[str, tuple[str, str]]:
    return {name: (s["status"], s["detail"][:160]) for name, s in result.items()}


def harness_keys(ports: tuple[int, ...]) -> dict[int, int]:
    """vhc:* keys left on each reachable server (every port of the stack, replicas included)."""
    left = {}
    for port in ports:
        client = redis.Redis(port=port, socket_timeout=2, decode_responses=True)
        try:
            left[port] = sum(1 for _ in client.scan_iter(match="vhc:*", count=1000))
        finally:
            client.close()
    return {port: count for port, count in left.items() if count}


def docker(*args: str) -> None:
    subprocess.run(["docker", *args], check=True, capture_output=True, timeout=60)


class Person:
    """Runs a suite with --fault manual and does what it asks, as a person at a second terminal."""

    def __init__(self, script: str, *args: str, env: dict[str, str]):
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, f"app/{script}", "--fault", "manual", "--manual-timeout", "90",
                                      *args], cwd=REPO_ROOT, env=dict(os.environ, **env, COLUMNS="160"),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 120) -> str:
        def seen() -> tuple[bool, str]:
            found = next((line for line in self.lines if text in line), None)
            if found is None and self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode} before saying {text!r}:\n{self.output()[-3000:]}")
            return found is not None, (self.lines[-1].strip() if self.lines else "no output yet")
        wait_until(seen, timeout=timeout, what=f"the suite to say {text!r}")
        return next(line for line in self.lines if text in line)

    def finish(self, timeout: float = 180) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        """Whatever happened: the suite is not left running (SIGINT first, so it cleans up)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.reader.join(timeout=5)

    def output(self) -> str:
        return "".join(self.lines)


# ---- Sentinel HA ---------------------------------------------------------------------------------

def test_ha_suite_kills_the_master_with_docker_kill(ha_compose, tmp_path):
    out = tmp_path / "ha.json"
    proc = run_script("ha_test.py", "--json", str(out), env=user_env(tmp_path))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    result = scenarios(out)
    allowed = {name: ({"OK", "WARN"} if name == "reconnect" else {"OK"}) for name in result}
    assert all(s["status"] in allowed[name] for name, s in result.items()), statuses(result)
    kill = result["master_kill"]["metrics"]
    assert kill["fault"] == "docker kill valkey-master", kill["fault"]
    assert 1500 <= kill["downtime_ms"] <= 15000, f"downtime {kill['downtime_ms']} ms, expected 1.5-15 s"
    assert result["new_master"]["metrics"]["old_master"] == "valkey-master:6379"
    loss = result["consistency"]["metrics"]
    assert loss["acked"] >= 300 and loss["wait_confirmed_lost"] == 0, loss
    assert result["reconnect"]["metrics"]["plain_downtime_ms"] is not None, \
        "the stock redis-py yardstick did not run on compose"
    assert result["replica_sync"]["metrics"]["old_master_rejoined"] is True
    assert harness_keys(HA_DATA_PORTS) == {}


def test_ha_suite_with_a_person_running_docker_kill(ha_compose, tmp_path):
    out = tmp_path / "ha.json"
    person = Person("ha_test.py", "--json", str(out), env=user_env(tmp_path))
    try:
        hint = person.wait_for("Now kill the master")
        assert "docker kill valkey-master" in hint, hint
        docker("kill", "valkey-master")
        person.wait_for("now start")
        docker("start", "valkey-master")
        code = person.finish()
    finally:
        person.stop()
    assert code == 0, person.output()[-4000:]
    result = scenarios(out)
    assert result["master_kill"]["status"] == "OK", statuses(result)
    assert result["replica_sync"]["metrics"]["old_master_rejoined"] is True, statuses(result)
    assert harness_keys(HA_DATA_PORTS) == {}


# ---- Cluster and the cache on it -----------------------------------------------------------------

def test_cluster_suite_kills_a_primary_with_docker_kill(cluster_compose, tmp_path):
    out = tmp_path / "cluster.json"
    proc = run_script("cluster_test.py", "--json", str(out), env=user_env(tmp_path))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    result = scenarios(out)
    assert all(s["status"] == "OK" for s in result.values()), statuses(result)
    failure = result["primary_failure"]["metrics"]
    assert failure["fault"].startswith("docker kill node-"), failure["fault"]
    assert 1.0 <= failure["promoted_after_s"] <= 15, failure["promoted_after_s"]
    assert failure["lost"] == 0 and failure["acked"] > 100, failure
    assert failure.get("plain_downtime_ms") is not None, "the stock redis-py yardstick did not run on compose"
    assert result["ask"]["metrics"]["ask_redirects_during"] >= 1, result["ask"]
    assert harness_keys(CLUSTER_PORTS) == {}


def test_cluster_suite_with_a_person_running_docker_kill(cluster_compose, tmp_path):
    out = tmp_path / "cluster.json"
    person = Person("cluster_test.py", "--json", str(out), env=user_env(tmp_path))
    try:
        hint = person.wait_for("docker kill node-")
        container = re.search(r"docker kill (node-\d+)", hint).group(1)
        docker("kill", container)
        person.wait_for("now start")
        docker("start", container)
        code = person.finish()
    finally:
        person.stop()
    assert code == 0, person.output()[-4000:]
    result = scenarios(out)
    assert result["primary_failure"]["status"] == "OK", statuses(result)
    assert result["rejoin"]["status"] == "OK", statuses(result)
    assert harness_keys(CLUSTER_PORTS) == {}


def test_cache_suite_on_the_compose_cluster(cluster_compose, tmp_path):
    out = tmp_path / "cache.json"
    proc = run_script("cache_test.py", "--json", str(out), env=user_env(tmp_path))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    result = scenarios(out)
    assert all(s["status"] in ("OK", "WARN") for s in result.values()), statuses(result)
    assert harness_keys(CLUSTER_PORTS) == {}


# ---- Compatibility ---------------------------------------------------------------------------------

def test_compat_suite_reports_the_real_server_versions(compat_compose, tmp_path):
    proc = run_script("test_runner.py", "--json-dir", str(tmp_path), env=user_env(tmp_path))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    reports = {p.name: json.loads(p.read_text()) for p in tmp_path.glob("compat-*.json")}
    text = json.dumps(reports)
    # The image's tag is the version it really runs (offline: Debian's 7.0.15; registry: redis:7.2.6).
    redis_version = image_settings().get("REDIS_IMAGE", "redis:7.2.6").rsplit(":", 1)[1]
    valkey_version = image_settings().get("VALKEY_IMAGE", "valkey/valkey:9.0.0").rsplit(":", 1)[1]
    assert redis_version in text and valkey_version in text, (
        f"{redis_version} / {valkey_version} not reported in {sorted(reports)}")
    if redis_version != "7.2.6":
        assert "7.2.6" not in text, "a report claims Redis 7.2.6, which did not run"
    assert harness_keys((6379, 6380)) == {}
