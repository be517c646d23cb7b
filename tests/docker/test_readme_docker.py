"""The README's Docker blocks, run as written (like tests/test_readme.py does for the no-Docker ones).

Each block brings a compose stack up and runs its suites against it, which kill a server with
`docker kill` and start it again. Before the block's last line (`down -v`) the suites' JSON verdicts
are checked and every server is checked for harness keys, and on the HA and cluster stacks a person's
run follows (--fault manual, the kill done by docker here: person.py); then the last line runs as written.
Whatever happens, the block's compose file is taken down afterwards and nothing of it may be left.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from docker.compose_checks import (
    check_cache,
    check_cluster_docker_kill,
    check_compat_versions,
    check_ha_docker_kill,
    compose_project,
)
from docker.person import person_kills_a_primary, person_kills_the_master
from lib.launcher.compose_stack import ComposeStack, image_settings
from lib.topology.topology import TOPOLOGY_FILES
from lib.util import REPO_ROOT
from test_readme import README, marked_blocks, run_lines

DOCKER_BLOCKS = marked_blocks(README.read_text(), "docker")
TOPOLOGY_OF_FILE = {file: name for name, file in TOPOLOGY_FILES.items()}
SUITE_OUTPUT = re.compile(r"app/(?P<suite>ha_test|cluster_test|cache_test|test_runner)\.py\b.*?"
                          r"--json(?:-dir)? (?P<path>\S+)")
BY_HAND: dict[str, Callable[[Path], None]] = {"ha": person_kills_the_master, "cluster": person_kills_a_primary}
CHECKS: dict[str, Callable[[Path], None]] = {"ha_test": check_ha_docker_kill, "cluster_test": check_cluster_docker_kill,
                                             "cache_test": check_cache, "test_runner": check_compat_versions}


def topology_of(commands: list[str]) -> str:
    """The compose file a block brings up (-f FILE), or docker-compose.yml when it names none."""
    first = commands[0]
    match = re.search(r"-f (\S+)", first)
    return TOPOLOGY_OF_FILE[match.group(1) if match else "docker-compose.yml"]


def suite_outputs(commands: list[str]) -> list[tuple[str, Path]]:
    """(suite, the JSON file or folder it writes) for every suite the block runs."""
    return [(m["suite"], REPO_ROOT / m["path"]) for command in commands if (m := SUITE_OUTPUT.search(command))]


def forget(suite: str, path: Path) -> None:
    """Remove what an earlier run of this suite wrote there, so that only this run's verdicts are read."""
    files = path.glob("compat-*.json") if suite == "test_runner" else [path]
    for file in files:
        file.unlink(missing_ok=True)


def test_the_readme_shows_a_docker_block_per_topology():
    shown = sorted({topology_of(commands) for _, commands in DOCKER_BLOCKS})
    assert shown == sorted(TOPOLOGY_FILES), f"README Docker blocks cover {shown}, expected every topology"
    for heading, commands in DOCKER_BLOCKS:
        assert commands[-1].endswith("down -v"), f"the block under {heading!r} must end by taking its stack down"
        suites = [c for c in commands if re.search(r"app/\w+_test\.py|app/test_runner\.py", c)]
        assert suites and len(suite_outputs(commands)) == len(suites), (
            f"every suite in the block under {heading!r} must save its JSON (--json / --json-dir): {suites}")


@pytest.mark.timeout(900)
@pytest.mark.parametrize("heading,commands", DOCKER_BLOCKS, ids=[h for h, _ in DOCKER_BLOCKS])
def test_readme_docker_block_runs(heading, commands, tmp_path, docker_images, monkeypatch):
    topology = topology_of(commands)
    for name, value in image_settings().items():  # what `set -a; . docker/images.env; set +a` does
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", compose_project(topology))
    outputs = suite_outputs(commands)
    for suite, path in outputs:
        forget(suite, path)
    stack = ComposeStack(topology, env={"COMPOSE_PROJECT_NAME": compose_project(topology)}, started=True)
    try:
        *run, down = commands
        run_lines(run, tmp_path / "no-local-stacks")
        for suite, path in outputs:  # on the still running stack: no harness key may be left
            CHECKS[suite](path)
        if topology in BY_HAND:  # the same stack, once more: a person does the docker kill (person.py)
            BY_HAND[topology](tmp_path)
        run_lines([down], tmp_path / "no-local-stacks")
    finally:
        stack.down()
    assert stack.leftovers() == [], f"left after the block: {stack.leftovers()}"
