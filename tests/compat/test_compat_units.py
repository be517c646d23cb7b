"""Fast tests of the compatibility suite's pieces: target config, the diff, discovery, the contract."""

from __future__ import annotations

import pytest

import config
import test_runner
from config import Target, parse_target, parse_targets, resolve_targets
from lib.checks.compat_diff import MISSING, compare_metric, diff_results, diff_scenario, flatten
from lib.checks.result import CheckResult
from lib.errors import SetupError
from lib.launcher.ownership import Ownership
from lib.suites.scenario import CONTRACT_KEYS, contract_problem, result, to_result


@pytest.fixture(autouse=True)
def no_local_compat_stack(monkeypatch, tmp_path):
    """Resolution must not see a compat stack someone happens to run in .stack/compat, nor the compose
    containers someone runs on the default ports (lib.launcher.ownership would call them ours)."""
    monkeypatch.setattr(config.LocalStack, "default_state_dir", staticmethod(lambda name: tmp_path / "none"))
    monkeypatch.setattr(config, "ownership", lambda host, port: Ownership(False, f"{host}:{port} is not ours"))


# ---- targets -----------------------------------------------------------------------------------

def test_target_from_host_port():
    assert parse_target("valkey=10.0.0.5:6380", "t") == Target("valkey", "10.0.0.5", 6380, source="t")


def test_target_from_url_with_credentials_and_db():
    target = parse_target("v9=redis://app:s%3Acret@cache.example:7000/3", "t")
    assert (target.host, target.port, target.username, target.password, target.db) == (
        "cache.example", 7000, "app", "s:cret", 3)
    assert "s:cret" not in str(target.describe()), "the password must not reach reports"


@pytest.mark.parametrize("spec", ["valkey", "=127.0.0.1:6380", "v=127.0.0.1", "v=rediss://h:1", "v w=h:1",
                                  "v=redis://h:1/x", "v=127.0.0.1:99999"])
def test_bad_target_is_a_setup_error(spec):
    with pytest.raises(SetupError, match="bad (target|endpoint)"):
        parse_target(spec, "--target")


def test_duplicate_target_names_are_refused():
    with pytest.raises(SetupError, match="given twice.*redis"):
        parse_targets(["redis=h:1", "redis=h:2"], "--target")


def test_cli_targets_win_over_env_and_any_number_is_allowed():
    env = {"VHC_TARGETS": "a=h:1"}
    targets = resolve_targets(["v1=h:1", "v2=h:2", "v3=h:3"], env=env)
    assert [t.name for t in targets] == ["v1", "v2", "v3"]
    assert all(t.source == "--target" and not t.harness_started for t in targets)


def test_env_targets_win_over_defaults():
    targets = resolve_targets(None, env={"VHC_TARGETS": "old=127.0.0.1:7000, new=redis://127.0.0.1:7001/2"})
    assert [(t.name, t.port, t.db) for t in targets] == [("old", 7000, 0), ("new", 7001, 2)]


def test_defaults_are_the_compose_ports_and_not_harness_started():
    targets = resolve_targets(None, env={})
    assert [(t.name, t.address, t.harness_started) for t in targets] == [
        ("redis", "127.0.0.1:6379", False), ("valkey", "127.0.0.1:6380", False)]


# ---- the diff ------------------------------------------------------------------------------------

def test_flatten_nests_with_dots_and_keeps_lists():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}}) == {"a.b": 1, "a.c.d": [1, 2], "e": {}}


def test_equal_metrics_are_no_difference():
    assert compare_metric("x", {"r": 1, "v": 1}, 2.0) is None


def test_a_metric_on_one_target_only_is_missing_on_the_others():
    entry = compare_metric("commands.hsetex", {"r": MISSING, "v": "arity=-6"}, 2.0)
    assert entry == {"metric": "commands.hsetex", "kind": "missing", "values": {"r": MISSING, "v": "arity=-6"}}


def test_name_lists_report_what_each_target_has_alone():
    entry = compare_metric("config_parameters", {"r": ["a", "b"], "v": ["a", "c", "d"]}, 2.0)
    assert entry == {"metric": "config_parameters", "kind": "only-in", "values": {"r": ["b"], "v": ["c", "d"]}}


def test_timings_within_the_factor_or_below_a_millisecond_are_not_differences():
    assert compare_metric("get_ms", {"r": [10.0, 12.0, 11.0], "v": [19.0, 21.0, 20.0]}, 2.0) is None
    assert compare_metric("get_ms", {"r": 0.1, "v": 0.9}, 2.0) is None  # 9x, but sub-millisecond jitter
    entry = compare_metric("get_ms", {"r": [10.0, 11.0, 12.0], "v": [30.0, 31.0, 29.0]}, 2.0)
    assert entry is not None and entry["kind"] == "timing"


def test_other_unequal_values_are_value_differences():
    assert compare_metric("encoding", {"r": "hashtable", "v": "listpack"}, 2.0)["kind"] == "value"
    assert compare_metric("samples", {"r": [1, 2], "v": [1, 3]}, 2.0)["kind"] == "value"


def test_status_difference_comes_first_and_skipped_targets_are_not_compared():
    ok = result("s", "OK", "", {"n": 1, "only_here": True})
    skipped = result("s", "WARN", "skipped: destructive", {})
    entry = diff_scenario("s", {"r": ok, "v": skipped})
    assert entry["differences"] == [{"metric": "status", "kind": "status", "values": {"r": "OK", "v": "WARN"}}]


def test_diff_over_three_targets_lists_differing_scenarios():
    results = {t: [result("same", "OK", "", {"n": 1}), result("enc", "OK", "", {"e": e})]
               for t, e in (("r", "quicklist"), ("v8", "listpack"), ("v9", "listpack"))}
    diff = diff_results(results)
    assert diff["targets"] == ["r", "v8", "v9"]
    assert diff["differing"] == ["enc"]
    (entry,) = diff["scenarios"][1]["differences"]
    assert entry["values"] == {"r": "quicklist", "v8": "listpack", "v9": "listpack"}


def test_a_scenario_missing_on_one_target_is_a_status_difference():
    diff = diff_results({"r": [result("a", "OK", "")], "v": []})
    assert diff["scenarios"][0]["differences"][0]["values"] == {"r": "OK", "v": MISSING}


# ---- scenarios and the contract ------------------------------------------------------------------

def test_contract_problems_are_named():
    assert contract_problem(result("s", "OK", "fine")) is None
    assert "status 'PASS'" in contract_problem(CheckResult("s", "PASS", ""))
    assert "metrics of type NoneType" in contract_problem(CheckResult("s", "OK", "", None))  # type: ignore[arg-type]
    assert "not the contract dict" in contract_problem(None)
    assert "without metrics" in contract_problem({"scenario": "s", "status": "OK", "detail": ""})
    assert "status 'PASS'" in contract_problem({"scenario": "s", "status": "PASS", "detail": "", "metrics": {}})


def test_every_shipped_scenario_declares_the_contract_attributes():
    scenarios = test_runner.discover()
    assert {s.name for s in scenarios} >= {"basic_crud", "data_structures", "scan_and_iter", "pubsub", "lua_and_tx",
                                           "memory_eviction", "large_payloads", "command_surface"}
    assert all(s.load_error is None for s in scenarios), [s.load_error for s in scenarios if s.load_error]
    assert [s.name for s in scenarios if s.destructive] == ["memory_eviction"]
    assert scenarios[-1].destructive, "destructive scenarios run last, after the others saw default config"


def test_discovery_turns_broken_files_into_failing_scenarios(tmp_path):
    (tmp_path / "good.py").write_text("NAME = 'good'\nDESTRUCTIVE = False\ndef run(client, ctx):\n    return {}\n")
    (tmp_path / "no_run.py").write_text("NAME = 'no_run'\nDESTRUCTIVE = False\n")
    (tmp_path / "bad_import.py").write_text("import does_not_exist_anywhere\n")
    (tmp_path / "_helper.py").write_text("raise RuntimeError('helpers are not scenarios')\n")
    found = {s.name: s for s in test_runner.discover(tmp_path)}
    assert set(found) == {"good", "no_run", "bad_import"}
    assert found["good"].load_error is None
    assert "does not define run" in found["no_run"].load_error
    assert "ModuleNotFoundError" in found["bad_import"].load_error
    outcome = test_runner.run_one(found["bad_import"], client=None, target=Target("t", "h", 1),
                                  allow_destructive=False)
    assert outcome.status == "FAIL" and "could not load" in outcome.detail


class _Untouchable:
    def __getattr__(self, name):
        raise AssertionError(f"a skipped destructive scenario used the client ({name})")


def test_destructive_scenario_on_a_target_we_did_not_start_touches_nothing():
    scenario = test_runner.Scenario("evict", True, module=None)
    outcome = test_runner.run_one(scenario, _Untouchable(), Target("prod", "h", 1), allow_destructive=False)
    assert outcome.status == "WARN" and outcome.detail.startswith("skipped: destructive"), outcome


def test_unknown_scenario_name_is_a_setup_error():
    with pytest.raises(SetupError, match="unknown scenario nope"):
        test_runner.select(test_runner.discover(), ["nope"])


def test_result_is_the_one_contract_and_its_json_keys_are_unchanged():
    outcome = result("s", "OK", "fine")
    assert isinstance(outcome, CheckResult) and outcome.metrics == {}
    assert tuple(outcome.to_dict()) == CONTRACT_KEYS == ("scenario", "status", "detail", "metrics")


def test_a_legacy_contract_dict_becomes_a_scenario_result():
    legacy = {"scenario": "mine", "status": "WARN", "detail": "old style", "metrics": {"n": 1}}
    assert to_result("mine", legacy) == CheckResult("mine", "WARN", "old style", {"n": 1})


@pytest.mark.parametrize(("returned", "problem"), [
    (None, "scenario returned NoneType, not the contract dict"),
    ({"scenario": "s", "status": "OK"}, "scenario returned a dict without detail, metrics"),
    (CheckResult("s", "PASS", ""), "scenario returned status 'PASS', not one of OK, WARN, FAIL"),
])
def test_a_wrong_shape_is_a_fail_that_says_what_was_returned(returned, problem):
    assert to_result("s", returned) == CheckResult("s", "FAIL", problem, {"error_type": "ContractError"})


class _KeyStore:
    """Just enough of a server for run_one: PING, SET, SCAN, DEL."""

    def __init__(self):
        self.keys: dict[str, str] = {}

    def ping(self) -> bool:
        return True

    def set(self, key: str, value) -> bool:
        self.keys[key] = str(value)
        return True

    def scan_iter(self, match: str, count: int):
        prefix = match.rstrip("*").replace("\\", "")
        return iter([k for k in list(self.keys) if k.startswith(prefix)])

    def delete(self, *keys: str) -> int:
        return sum(self.keys.pop(k, None) is not None for k in keys)

    def close(self) -> None:
        pass


def _scenario(tmp_path, body: str) -> test_runner.Scenario:
    (tmp_path / "probe.py").write_text(f"NAME = 'probe'\nDESTRUCTIVE = False\ndef run(client, ctx):\n{body}")
    (scenario,) = test_runner.discover(tmp_path)
    return scenario


def test_a_crashing_scenario_is_a_fail_with_where_it_crashed_and_its_keys_deleted(tmp_path, monkeypatch):
    store = _KeyStore()
    monkeypatch.setattr(Target, "client", lambda self, timeout=30.0: store)
    scenario = _scenario(tmp_path, "    client.set(ctx.key('left'), 1)\n    raise RuntimeError('boom')\n")
    outcome = test_runner.run_one(scenario, store, Target("t", "h", 1), allow_destructive=False)
    assert isinstance(outcome, CheckResult), outcome
    assert (outcome.status, outcome.detail) == ("FAIL", "RuntimeError: boom at probe.py:5"), outcome
    assert outcome.metrics == {"error_type": "RuntimeError", "leftover_keys_deleted": 1}, outcome.metrics
    assert store.keys == {}, "the runner must delete what the scenario left"


def test_a_legacy_dict_that_leaves_keys_is_a_warn_saying_so(tmp_path, monkeypatch):
    store = _KeyStore()
    monkeypatch.setattr(Target, "client", lambda self, timeout=30.0: store)
    scenario = _scenario(tmp_path, "    client.set(ctx.key('left'), 1)\n"
                                   "    return {'scenario': NAME, 'status': 'OK', 'detail': 'ran', 'metrics': {}}\n")
    outcome = test_runner.run_one(scenario, store, Target("t", "h", 1), allow_destructive=False)
    assert outcome == CheckResult("probe", "WARN", "ran; left 1 keys under its prefix (deleted by the runner)",
                                     {"leftover_keys_deleted": 1}), outcome
