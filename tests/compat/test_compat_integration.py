"""The runner against a real local Redis and Valkey, as a user runs it (python app/test_runner.py)."""

from __future__ import annotations

import json

import pytest

from lib.suites.scenario import CONTRACT_KEYS

from .conftest import client_for, run_runner

pytestmark = pytest.mark.integration

TARGETS = ("redis", "valkey")
EVICTION_SETTINGS = ("maxmemory", "maxmemory-policy")


@pytest.fixture(scope="module")
def full_run(compat_stack, tmp_path_factory):
    """Every scenario on both servers, once for the module's assertions (the stack was started by us)."""
    json_dir = tmp_path_factory.mktemp("results")
    proc = run_runner("--json-dir", str(json_dir), state_dir=compat_stack.state_dir)
    return proc, json_dir


def load(json_dir, name: str) -> dict:
    return json.loads((json_dir / f"compat-{name}.json").read_text())


def test_every_scenario_returns_the_contract_dict_on_both(full_run):
    proc, json_dir = full_run
    assert proc.returncode == 0, f"runner exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr}"
    for target in TARGETS:
        report = load(json_dir, target)
        names = [r["scenario"] for r in report["scenarios"]]
        assert len(names) >= 8 and len(set(names)) == len(names), names
        for item in report["scenarios"]:
            assert tuple(item) == CONTRACT_KEYS, (target, item["scenario"], list(item))
            assert item["status"] == "OK", (target, item["scenario"], item["detail"])
            assert isinstance(item["metrics"], dict) and item["metrics"], (target, item["scenario"])
        assert report["target"]["harness_started"] is True, report["target"]


def test_reports_show_the_real_server_versions(full_run, compat_stack):
    proc, json_dir = full_run
    for target in TARGETS:
        info = client_for(compat_stack, target).info("server")
        version = info.get("valkey_version") or info["redis_version"]
        assert load(json_dir, target)["target"]["server"]["redis_version"] == info["redis_version"]
        assert version in load(json_dir, target)["server"], (target, version)
        assert f"{info.get('server_name') or 'redis'} {version}" in proc.stdout, f"{target} {version} not printed"


def test_diff_file_lists_command_surface_differences(full_run):
    _, json_dir = full_run
    diff = json.loads((json_dir / "compat-diff.json").read_text())
    assert diff["targets"] == list(TARGETS)
    surface = next(s for s in diff["scenarios"] if s["scenario"] == "command_surface")
    kinds = {d["kind"] for d in surface["differences"]}
    assert surface["differences"] and "missing" in kinds, f"Redis and Valkey should differ; got kinds {kinds}"
    assert "command_surface" in diff["differing"]
    count = next(d for d in surface["differences"] if d["metric"] == "command_count")
    assert count["values"]["redis"] != count["values"]["valkey"], count


def test_nothing_is_left_on_the_servers(full_run, compat_stack):
    for target in TARGETS:
        assert client_for(compat_stack, target).dbsize() == 0, f"{target} kept keys after the run"


def test_memory_eviction_restores_the_original_config(compat_stack, tmp_path):
    clients = {t: client_for(compat_stack, t) for t in TARGETS}
    before = {}
    for target, client in clients.items():  # a non-default original, so "restored" cannot mean "reset"
        client.config_set("maxmemory", "123456789")
        client.config_set("maxmemory-policy", "volatile-lfu")
        before[target] = {k: client.config_get(k)[k] for k in EVICTION_SETTINGS}
    try:
        proc = run_runner("--scenario", "memory_eviction", "--json-dir", str(tmp_path),
                          state_dir=compat_stack.state_dir)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
        for target, client in clients.items():
            after = {k: client.config_get(k)[k] for k in EVICTION_SETTINGS}
            assert after == before[target], f"{target}: CONFIG GET gave {after}, expected {before[target]}"
            (item,) = load(tmp_path, target)["scenarios"]
            assert item["metrics"]["evicted_count"] > 0 and item["metrics"]["restored"] is True, item
    finally:
        for client in clients.values():
            client.config_set("maxmemory", "0")
            client.config_set("maxmemory-policy", "noeviction")


def test_a_scenario_that_raises_becomes_a_fail_dict(compat_stack, tmp_path):
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "explodes.py").write_text(
        "NAME = 'explodes'\nDESTRUCTIVE = False\n"
        "def run(client, ctx):\n"
        "    client.set(ctx.key('left-behind'), 1)\n"
        "    raise RuntimeError('boom on purpose')\n")
    (scenarios / "fine.py").write_text(
        "from lib.suites.scenario import result\nNAME = 'fine'\nDESTRUCTIVE = False\n"
        "def run(client, ctx):\n    return result(NAME, 'OK', 'ran', {'pong': client.ping()})\n")
    proc = run_runner("--scenarios-dir", str(scenarios), "--json-dir", str(tmp_path), state_dir=compat_stack.state_dir)
    assert proc.returncode == 1, f"a FAIL must exit 1, got {proc.returncode}\n{proc.stdout[-2000:]}{proc.stderr}"
    for target in TARGETS:
        by_name = {r["scenario"]: r for r in load(tmp_path, target)["scenarios"]}
        assert by_name["explodes"]["status"] == "FAIL" and "RuntimeError: boom on purpose" in by_name["explodes"][
            "detail"], by_name["explodes"]
        assert by_name["explodes"]["metrics"]["leftover_keys_deleted"] == 1, by_name["explodes"]
        assert by_name["fine"]["status"] == "OK", "one failing scenario must not stop the others"
        assert client_for(compat_stack, target).dbsize() == 0, f"{target}: the runner's cleanup missed a key"


def test_destructive_scenario_on_a_target_not_started_by_the_harness_is_skipped(compat_stack, tmp_path):
    client = client_for(compat_stack, "valkey")
    before = {k: client.config_get(k)[k] for k in EVICTION_SETTINGS}
    evicted_before = client.info("stats")["evicted_keys"]
    port = compat_stack.service("valkey").port
    proc = run_runner("--target", f"elsewhere=127.0.0.1:{port}", "--scenario", "memory_eviction",
                      "--json-dir", str(tmp_path))  # no $VHC_STACK_STATE: the runner cannot know we started it
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    (item,) = load(tmp_path, "elsewhere")["scenarios"]
    assert item["status"] == "WARN" and item["detail"].startswith("skipped: destructive"), item
    assert load(tmp_path, "elsewhere")["target"]["harness_started"] is False
    assert {k: client.config_get(k)[k] for k in EVICTION_SETTINGS} == before
    assert client.info("stats")["evicted_keys"] == evicted_before


def test_a_target_given_by_address_is_harness_started_when_our_stack_serves_it(compat_stack):
    from config import resolve_targets

    port = compat_stack.service("redis").port
    targets = resolve_targets([f"mine=127.0.0.1:{port}", "other=127.0.0.1:1"],
                              env={"VHC_STACK_STATE": str(compat_stack.state_dir)})
    assert [(t.name, t.harness_started) for t in targets] == [("mine", True), ("other", False)]


def test_unreachable_target_is_a_one_line_setup_error(tmp_path):
    proc = run_runner("--target", "gone=127.0.0.1:1", "--json-dir", str(tmp_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "target gone at 127.0.0.1:1" in proc.stderr and "unreachable" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_unreachable_target_without_a_local_redis_says_how_to_install_it(tmp_path):
    proc = run_runner("--target", "redis=127.0.0.1:1", "--json-dir", str(tmp_path),
                      extra_env={"REDIS_SERVER_BIN": str(tmp_path / "no-such-redis-server")})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "apt-get install redis-server" in proc.stderr and "REDIS_SERVER_BIN" in proc.stderr, proc.stderr
