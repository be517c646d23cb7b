"""The Docker tier: the README's Docker sections, run for real against the compose files.

On a machine without a Docker engine the whole tier is skipped with one line saying why; under
CI=true it never is (CI installs and starts the engine, so a missing engine is a CI failure).
Images come from docker/build-offline-images.sh when no registry image is present (our machines
reach no image registry); .ci/run builds them before the tests, so here they are only reused.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lib.launcher.compose_stack import IMAGES_ENV_FILE, REGISTRY_IMAGES_ENV, engine_answers
from lib.util import REPO_ROOT

IN_CI = os.environ.get("CI") == "true"


def pytest_collection_modifyitems(config, items):
    """Every test in this folder is of the docker tier (and starts real servers: integration)."""
    for item in items:
        if "tests/docker/" in str(item.fspath):
            item.add_marker(pytest.mark.docker)
            item.add_marker(pytest.mark.integration)


@contextlib.contextmanager
def build_lock(run_dir: Path) -> Iterator[Path | None]:
    """One image build at a time: the Docker tier runs on two xdist workers, and the build rewrites
    docker/images.env, which the other worker's compose commands read. Yields the file that says this
    pytest run already built them (the first worker builds or finds them current, the second skips);
    None without xdist, where the session fixture runs once anyway."""
    with open(run_dir / "docker-images.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield run_dir / "docker-images.built" if os.environ.get("PYTEST_XDIST_WORKER") else None
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def docker_images(tmp_path_factory) -> None:
    """A usable engine and the compose files' images, or a skip (a failure under CI=true) that says why."""
    if not engine_answers():
        reason = "no Docker engine answers `docker info` (install docker.io and start dockerd)"
        if IN_CI:
            pytest.fail(f"CI=true, so the Docker tier must run: {reason}; .ci/run should have started it")
        pytest.skip(f"{reason}: the Docker tier is skipped")
    if os.environ.get(REGISTRY_IMAGES_ENV) == "1":
        return
    # Under xdist each worker's base temp is popen-gwN inside the run's own: the parent is this run's alone.
    run_dir = tmp_path_factory.getbasetemp().parent if os.environ.get("PYTEST_XDIST_WORKER") else \
        tmp_path_factory.getbasetemp()
    with build_lock(run_dir) as built:
        if built is not None and built.exists():
            return
        proc = subprocess.run(["bash", str(REPO_ROOT / "docker" / "build-offline-images.sh")], capture_output=True,
                              text=True, timeout=900, stdin=subprocess.DEVNULL)
        if proc.returncode == 0 and built is not None:
            built.touch()
    if proc.returncode != 0:
        message = f"docker/build-offline-images.sh failed: {(proc.stderr or proc.stdout).strip()[-600:]}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    assert IMAGES_ENV_FILE.exists(), f"{IMAGES_ENV_FILE} was not written by the image build"
