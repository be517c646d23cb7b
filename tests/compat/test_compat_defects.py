"""Issue 15, compatibility side: eviction of other people's keys is reported, bad targets and output
directories are one-line errors before any server is touched, a corrupt stack record is not ignored."""

from __future__ import annotations

import json

import pytest

import config
import test_runner
from lib.checks.result import CheckResult
from lib.errors import SetupError
from lib.launcher.local_stack import STATE_FILE
from lib.launcher.ownership import Ownership
from lib.suites.scenario import ScenarioContext
from lib.util import free_ports
from scenarios import memory_eviction

from .conftest import client_for, run_runner

# ---- 1. eviction of keys the harness did not create ----------------------------------------------


class EvictingServer:
    """Just enough of a server for memory_eviction: bytes per key, maxmemory, allkeys-lru by last write."""

    BASE_MEMORY = 1_000_000

    def __init__(self, others: dict[str, int]):
        self.sizes: dict[str, int] = dict(others)  # insertion order = least recently used first
        self.config = {"maxmemory": "0", "maxmemory-policy": "noeviction"}
        self.evicted = 0

    def used(self) -> int:
        return self.BASE_MEMORY + sum(self.sizes.values())

    def config_get(self, name: str) -> dict[str, str]:
        return {name: self.config[name]}

    def config_set(self, name: str, value) -> bool:
        self.config[name] = str(value)
        return True

    def info(self, section: str) -> dict:
        return {"memory": {"used_memory": self.used(), "mem_allocator": "fake"},
                "stats": {"evicted_keys": self.evicted},
                "keyspace": {"db0": {"keys": len(self.sizes), "expires": 0}} if self.sizes else {}}[section]

    def set(self, key: str, value: str) -> bool:
        limit = int(self.config["maxmemory"])
        self.sizes.pop(key, None)
        while limit and self.config["maxmemory-policy"] == "allkeys-lru" and self.sizes \
                and self.used() + len(value) > limit:
            del self.sizes[next(iter(self.sizes))]
            self.evicted += 1
        self.sizes[key] = len(value)
        return True

    def exists(self, key: str) -> int:
        return int(key in self.sizes)

    def dbsize(self) -> int:
        return len(self.sizes)

    def scan_iter(self, match: str, count: int):
        prefix = match.rstrip("*").replace("\\", "")
        return iter([k for k in list(self.sizes) if k.startswith(prefix)])

    def delete(self, *keys: str) -> int:
        return sum(self.sizes.pop(k, None) is not None for k in keys)


def run_eviction(server: EvictingServer) -> CheckResult:
    ctx = ScenarioContext("t", "vhc:compat:memory_eviction:1-abc:", lambda: server, allow_destructive=True)
    return memory_eviction.run(server, ctx)


def test_eviction_of_keys_the_harness_did_not_create_is_counted_and_not_ok():
    user_keys = {f"user:{n}": 100_000 for n in range(75)}
    server = EvictingServer(user_keys)
    outcome = run_eviction(server)
    lost = 75 - sum(1 for k in server.sizes if k.startswith("user:"))
    assert lost > 0, "the fake should have evicted some user keys"
    assert outcome.metrics["others_keys_evicted"] == lost, outcome.metrics
    assert outcome.status == "WARN", outcome
    assert outcome.detail.startswith(f"{lost} key(s) the harness did not create were evicted"), outcome.detail
    assert outcome.metrics["keys_in_all_dbs_before"] == 75
    assert server.config == {"maxmemory": "0", "maxmemory-policy": "noeviction"}, "config must be put back"


def test_eviction_on_a_server_holding_only_our_keys_is_ok_with_zero_others_evicted():
    server = EvictingServer({})
    outcome = run_eviction(server)
    assert outcome.status == "OK", outcome
    assert outcome.metrics["others_keys_evicted"] == 0, outcome.metrics
    assert server.sizes == {}, "the scenario's own keys must be deleted"


@pytest.mark.integration
def test_allow_destructive_eviction_on_a_server_with_user_keys_says_how_many_it_evicted(compat_stack, tmp_path):
    client = client_for(compat_stack, "valkey")
    user_keys = {f"user:{n}": "u" * 100_000 for n in range(75)}  # written first: least recently used
    client.mset(user_keys)
    try:
        proc = run_runner("--target", f"elsewhere=127.0.0.1:{compat_stack.service('valkey').port}",
                          "--scenario", "memory_eviction", "--allow-destructive", "--json-dir", str(tmp_path))
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
        (item,) = json.loads((tmp_path / "compat-elsewhere.json").read_text())["scenarios"]
        evicted = len(user_keys) - sum(1 for _ in client.scan_iter(match="user:*"))
        assert evicted > 0, f"the run should have evicted user keys: {item['detail']}"
        assert item["metrics"]["others_keys_evicted"] == evicted, (evicted, item["metrics"])
        assert item["status"] == "WARN", item
        assert item["detail"].startswith(f"{evicted} key(s) the harness did not create were evicted"), item["detail"]
    finally:
        client.delete(*user_keys)
        client.close()


def test_a_target_in_a_compose_container_of_this_repo_is_harness_started(monkeypatch, tmp_path):
    monkeypatch.setattr(config.LocalStack, "default_state_dir", staticmethod(lambda name: tmp_path / "none"))
    ours = ("127.0.0.1", 6380)
    monkeypatch.setattr(config, "ownership", lambda host, port: Ownership(
        (host, port) == ours, "container valkey of docker-compose.yml" if (host, port) == ours else "not ours"))
    targets = config.resolve_targets(["ours=127.0.0.1:6380", "theirs=10.0.0.5:6380", "other=127.0.0.1:6399"], env={})
    assert [(t.name, t.harness_started) for t in targets] == [("ours", True), ("theirs", False), ("other", False)]
    assert targets[0].source.endswith("container valkey of docker-compose.yml"), targets[0].source


# ---- 3. one-line errors before any server is touched --------------------------------------------

@pytest.mark.parametrize("spec", ["x=redis://[::1", "x=redis://h:99999", "x=redis://h:port"])
def test_a_malformed_target_url_is_a_one_line_setup_error(spec):
    with pytest.raises(SetupError, match=r"^bad target") as raised:
        config.parse_target(spec, "--target")
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("json_dir", ["/proc/vhc-results", "/dev/null/results"])
def test_an_unwritable_json_dir_is_refused_before_any_target_is_asked(json_dir):
    port = free_ports(1)[0]  # nothing listens there: were the target asked first, "unreachable" would come
    with pytest.raises(SetupError, match="^--json-dir") as raised:
        test_runner.main(["--target", f"a=127.0.0.1:{port}", "--json-dir", json_dir])
    assert "unreachable" not in str(raised.value)


def test_a_writable_json_dir_that_does_not_exist_yet_is_accepted(tmp_path):
    test_runner.require_writable_dir(str(tmp_path / "new" / "results"))


# ---- 6. a corrupt stack record --------------------------------------------------------------------

def test_a_corrupt_compat_state_file_is_a_one_line_error_not_ignored(tmp_path):
    (tmp_path / STATE_FILE).write_text('{"topology": "compat", "services": ')
    with pytest.raises(SetupError, match=STATE_FILE) as raised:
        config.compat_stack({"VHC_STACK_STATE": str(tmp_path)})
    assert "\n" not in str(raised.value)
