"""A person at a second terminal: a suite with --fault manual on a compose stack, and this code doing what
it asks, `docker kill` then `docker start`, as the README's "fault by hand" section shows.

Run by test_readme_docker.py on the stack a README Docker block brought up, after the block's own
suites (their --fault auto `docker kill`) and before its `down -v`: the roles are already swapped
then, so the container to kill is the one the suite names. Afterwards no harness key may be left.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from docker.compose_checks import CLUSTER_PORTS, HA_DATA_PORTS, harness_keys, scenarios, statuses
from lib.util import REPO_ROOT
from lib.waits import wait_until


def user_env(tmp_path: Path) -> dict[str, str]:
    """No local stack may be found instead of the compose one: an empty stack root."""
    return {"VHC_STACK_ROOT": str(tmp_path / "no-local-stacks")}


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


def run_by_hand(script: str, out: Path, tmp_path: Path, container: str) -> dict[str, dict]:
    """The suite with --fault manual; when it says which container to kill (matched by `container`), kill it
    with docker, and start it again when asked. Every verdict but `reconnect` must pass (see below)."""
    person = Person(script, "--json", str(out), env=user_env(tmp_path))
    try:
        hint = person.wait_for("docker kill ")
        named = re.search(rf"docker kill ({container})", hint)
        assert named, f"the hint names no container matching {container!r}: {hint}"
        docker("kill", named.group(1))
        person.wait_for("now start")
        docker("start", named.group(1))
        code = person.finish()
    finally:
        person.stop()
    assert out.exists(), f"exit {code}, no JSON:\n{person.output()[-4000:]}"
    result = scenarios(out)
    # The by-hand flow is what this run checks; every verdict must pass but `reconnect`, whose ±100 ms
    # comparison with the 5 ms probe failed here twice in five runs under 5-6 busy xdist workers (ours
    # +228 ms, +800 ms: our writer's last acknowledged write came 0.26-0.29 s before the fault instant). The
    # --fault auto run before it on the same stack checks reconnect (OK or WARN); docs/backlog.md E7.
    failed = {name for name, s in result.items() if s["status"] == "FAIL"}
    assert failed <= {"reconnect"}, (statuses(result), person.output()[-4000:])
    assert code == (1 if failed else 0), (code, statuses(result))
    return result


def person_kills_the_master(tmp_path: Path) -> None:
    out = tmp_path / "by-hand-ha.json"
    result = run_by_hand("ha_test.py", out, tmp_path, r"valkey-[\w-]+")
    assert result["master_kill"]["status"] == "OK", statuses(result)
    assert result["replica_sync"]["metrics"]["old_master_rejoined"] is True, statuses(result)
    assert harness_keys(HA_DATA_PORTS) == {}


def person_kills_a_primary(tmp_path: Path) -> None:
    out = tmp_path / "by-hand-cluster.json"
    result = run_by_hand("cluster_test.py", out, tmp_path, r"node-\d+")
    assert result["primary_failure"]["status"] == "OK", statuses(result)
    assert result["rejoin"]["status"] == "OK", statuses(result)
    assert harness_keys(CLUSTER_PORTS) == {}
