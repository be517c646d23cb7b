"""What a suite run on a compose stack must have left: its JSON verdicts, and no harness key on any server.

Shared by the README's Docker blocks (tests/docker/test_readme_docker.py: each suite run by
--fault auto, i.e. `docker kill`) and the runs where a person does the kill (person.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import redis

from conftest import checks_of, ha_downtime_limit_ms
from lib.launcher.compose_stack import image_settings

HA_DATA_PORTS = (6379, 6380, 6381)
CLUSTER_PORTS = tuple(range(7000, 7006))
COMPAT_PORTS = (6379, 6380)


def compose_project(topology: str) -> str:
    """The compose project a topology's tests run in: one per topology, so that the HA and the cluster tiers
    can run side by side on two workers (tests/conftest.py) and one's `down -v` never touches the other's
    network. (A user's project is the clone's directory name; only the label differs.)"""
    return f"vhc-{topology}"


def scenarios(path: Path) -> dict[str, dict]:
    return checks_of(path)


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


def check_ha_docker_kill(out: Path) -> None:
    """ha_test.py --fault auto on the compose stack: docker kill valkey-master, every check passed."""
    result = scenarios(out)
    allowed = {name: ({"OK", "WARN"} if name == "reconnect" else {"OK"}) for name in result}
    assert all(s["status"] in allowed[name] for name, s in result.items()), statuses(result)
    kill = result["master_kill"]["metrics"]
    assert kill["fault"] == "docker kill valkey-master", kill["fault"]
    assert 1500 <= kill["downtime_ms"] <= ha_downtime_limit_ms(kill), result["master_kill"]["detail"]
    assert result["new_master"]["metrics"]["old_master"] == "valkey-master:6379"
    loss = result["consistency"]["metrics"]
    assert loss["acked"] >= 300 and loss["wait_confirmed_lost"] == 0, loss
    assert result["reconnect"]["metrics"]["plain_downtime_ms"] is not None, \
        "the stock redis-py yardstick did not run on compose"
    assert result["replica_sync"]["metrics"]["old_master_rejoined"] is True
    assert harness_keys(HA_DATA_PORTS) == {}


def check_cluster_docker_kill(out: Path) -> None:
    """cluster_test.py --fault auto on the compose cluster: docker kill of a primary, nothing lost, ASK seen."""
    result = scenarios(out)
    assert all(s["status"] == "OK" for s in result.values()), statuses(result)
    failure = result["primary_failure"]["metrics"]
    assert failure["fault"].startswith("docker kill node-"), failure["fault"]
    assert 1.0 <= failure["promoted_after_s"] <= 15, failure["promoted_after_s"]
    assert failure["lost"] == 0 and failure["acked"] > 100, failure
    assert failure.get("plain_downtime_ms") is not None, "the stock redis-py yardstick did not run on compose"
    assert result["ask"]["metrics"]["ask_redirects_during"] >= 1, result["ask"]
    assert harness_keys(CLUSTER_PORTS) == {}


def check_cache(out: Path) -> None:
    """cache_test.py on the compose cluster: OK or WARN everywhere, no key left."""
    result = scenarios(out)
    assert all(s["status"] in ("OK", "WARN") for s in result.values()), statuses(result)
    assert harness_keys(CLUSTER_PORTS) == {}


def check_compat_versions(json_dir: Path) -> None:
    """test_runner.py on the compose pair: the reports name the versions that really ran."""
    reports = {p.name: json.loads(p.read_text()) for p in json_dir.glob("compat-*.json")}
    assert reports, f"no compat-*.json in {json_dir}"
    text = json.dumps(reports)
    # The image's tag is the version it really runs (offline: Debian's 7.0.15; registry: redis:7.2.6).
    redis_version = image_settings().get("REDIS_IMAGE", "redis:7.2.6").rsplit(":", 1)[1]
    valkey_version = image_settings().get("VALKEY_IMAGE", "valkey/valkey:9.0.0").rsplit(":", 1)[1]
    assert redis_version in text and valkey_version in text, (
        f"{redis_version} / {valkey_version} not reported in {sorted(reports)}")
    if redis_version != "7.2.6":
        assert "7.2.6" not in text, "a report claims Redis 7.2.6, which did not run"
    assert harness_keys(COMPAT_PORTS) == {}
