"""The README's Docker blocks, run as written (like tests/test_readme.py does for the no-Docker ones).

Each block brings a compose stack up, runs a suite against it and takes it down; whatever happens,
the block's compose file is taken down afterwards and nothing of it may be left.
"""

from __future__ import annotations

import re

import pytest

from lib.launcher.compose_stack import ComposeStack, image_settings
from lib.topology.topology import TOPOLOGY_FILES
from test_readme import README, marked_blocks, run_as_user

DOCKER_BLOCKS = marked_blocks(README.read_text(), "docker")
TOPOLOGY_OF_FILE = {file: name for name, file in TOPOLOGY_FILES.items()}


def topology_of(commands: list[str]) -> str:
    """The compose file a block brings up (-f FILE), or docker-compose.yml when it names none."""
    first = commands[0]
    match = re.search(r"-f (\S+)", first)
    return TOPOLOGY_OF_FILE[match.group(1) if match else "docker-compose.yml"]


def test_the_readme_shows_a_docker_block_per_topology():
    shown = sorted({topology_of(commands) for _, commands in DOCKER_BLOCKS})
    assert shown == sorted(TOPOLOGY_FILES), f"README Docker blocks cover {shown}, expected every topology"
    for heading, commands in DOCKER_BLOCKS:
        assert commands[-1].endswith("down -v"), f"the block under {heading!r} must end by taking its stack down"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("heading,commands", DOCKER_BLOCKS, ids=[h for h, _ in DOCKER_BLOCKS])
def test_readme_docker_block_runs(heading, commands, tmp_path, docker_images, monkeypatch):
    for name, value in image_settings().items():  # what `set -a; . docker/images.env; set +a` does
        monkeypatch.setenv(name, value)
    stack = ComposeStack(topology_of(commands), started=True)
    try:
        result = run_as_user("\n".join(commands), tmp_path / "no-local-stacks", timeout=600)
    finally:
        stack.down()
    assert result.returncode == 0, (f"README Docker block under {heading!r} failed ({result.returncode}):\n"
                                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    assert stack.leftovers() == [], f"left after the block: {stack.leftovers()}"
