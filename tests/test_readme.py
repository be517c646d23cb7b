"""The README's commands are run, so the docs cannot silently rot.

A fenced block right after `<!-- readme-test: run -->` is run line by line, as a user would paste
it, in one bash with `set -e`: `python` is this venv's, `$VHC_FREE_PORTS=1` gives every stack free
ports and `$VHC_STACK_ROOT` keeps its state (and `stack.py down`) away from the user's own stacks.
`<!-- readme-test: two-commands -->` marks `make demo` / `make test`: CI (.ci/run) runs both on a
fresh machine, so running them here would repeat make demo's four runs (each suite's run is also a
README block below) or recurse. A block that repeats what another run already does as written is
marked for it instead, so that it runs once: `make-demo` (every command is one `make demo` runs,
checked here with make -n), `checked` (the test that names the block's heading runs it as written and
checks its JSON and servers in the middle: run_block_checked), `docker` (tests/docker/test_readme_docker.py)
and `by-hand` (test_fault_by_hand, below).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lib.launcher import process
from lib.util import REPO_ROOT
from lib.waits import wait_until

README = REPO_ROOT / "README.md"
MARKER = re.compile(r"<!-- readme-test: (?P<kind>[\w-]+) -->\s*\n```[^\n]*\n(?P<body>.*?)```", re.S)
TRAILING_COMMENT = re.compile(r"\s{2,}#.*$")


def marked_blocks(text: str, kind: str) -> list[tuple[str, list[str]]]:
    """(the heading above it, its commands) for every block marked `kind`."""
    blocks: list[tuple[str, list[str]]] = []
    for match in MARKER.finditer(text):
        if match.group("kind") != kind:
            continue
        headings = re.findall(r"^(##+) (.+)$", text[:match.start()], re.M)
        section = [title for level, title in headings if level == "##"][-1:]
        if headings and headings[-1][0] == "###":
            section.append(headings[-1][1])
        slug = re.sub(r"[^a-z0-9]+", "-", " ".join(section).lower()).strip("-") or "top"
        taken = sum(1 for name, _ in blocks if name == slug or name.startswith(f"{slug}-"))
        blocks.append((f"{slug}-{taken + 1}" if taken else slug, commands_in(match.group("body"))))
    return blocks


def commands_in(body: str) -> list[str]:
    """The command lines of a shell block: comments dropped, `\\` continuations joined."""
    commands, pending = [], ""
    for raw in body.splitlines():
        line = TRAILING_COMMENT.sub("", raw).strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        commands.append(pending + line)
        pending = ""
    return commands


def user_env(stack_root: Path) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    return dict(os.environ, PATH=f"{venv_bin}:{os.environ['PATH']}", VHC_FREE_PORTS="1",
                VHC_STACK_ROOT=str(stack_root), COLUMNS="160")


def processes_under(root: Path) -> list[int]:
    """Live processes whose command line mentions root (every server we start has its config there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and process.is_alive(int(entry.name)):
            try:
                if str(root) in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def run_as_user(script: str, stack_root: Path, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", f"set -euo pipefail\n{script}"], cwd=REPO_ROOT, env=user_env(stack_root),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@contextlib.contextmanager
def stacks_taken_down(stack_root: Path) -> Iterator[None]:
    """Whatever happens inside: `stack.py down` on our root, and no process under it may survive."""
    try:
        yield
    finally:
        run_as_user("python app/stack.py down", stack_root, 60)
        left = processes_under(stack_root)
        assert not left, f"README commands left processes running under {stack_root}: {left}"


def run_and_clean(script: str, stack_root: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the block; whatever happens, `stack.py down` on our root and check nothing survived."""
    with stacks_taken_down(stack_root):
        return run_as_user(script, stack_root, timeout)


def run_lines(lines: list[str], stack_root: Path) -> str:
    """README lines in one bash, as a user pastes them: they must succeed; their stdout."""
    if not lines:
        return ""
    result = run_as_user("\n".join(lines), stack_root, 600)
    assert result.returncode == 0, (f"README lines {lines} failed ({result.returncode}):\n"
                                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def run_block_checked(commands: list[str], stack_root: Path, suite: str, *,
                      before: Callable[[], None] = lambda: None,
                      check: Callable[[str], None] = lambda stdout: None) -> None:
    """A README block run as written, in three parts around its first line that runs `suite`: the lines
    before it, then `before()`; that line, then `check(its stdout)` on the stack the block brought up (its
    later lines may change it); then the rest. Whatever happens, `stack.py down` and nothing may survive."""
    at = next(i for i, command in enumerate(commands) if suite in command)
    with stacks_taken_down(stack_root):
        run_lines(commands[:at], stack_root)
        before()
        check(run_lines(commands[at:at + 1], stack_root))
        run_lines(commands[at + 1:], stack_root)


def checked_block(heading: str) -> list[str]:
    """The commands of the README block under `heading` marked `checked` (a test of its own runs it)."""
    found = [commands for name, commands in marked_blocks(README.read_text(), "checked") if name == heading]
    assert len(found) == 1, f"no README block marked checked under {heading!r}"
    return found[0]


def checked_block_outputs(heading: str, script: str) -> tuple[list[str], Path, Path]:
    """A checked block's commands, and the --json and --plot files its `script` line writes, removed first so
    that only this run's are read."""
    commands = checked_block(heading)
    suite = next(command for command in commands if script in command)
    out, png = (REPO_ROOT / re.search(rf"{flag} (\S+)", suite).group(1) for flag in ("--json", "--plot"))
    for path in (out, png):
        path.unlink(missing_ok=True)
    return commands, out, png


RUN_BLOCKS = marked_blocks(README.read_text(), "run")


def test_readme_marks_its_commands():
    text = README.read_text()
    tested = [heading for kind in ("run", "checked", "make-demo") for heading, _ in marked_blocks(text, kind)]
    for topology in ("sentinel-ha", "cluster-cluster", "redis-valkey-compatibility", "cache-store"):
        assert any(h.startswith(topology) for h in tested), f"no tested no-Docker block for {topology}: {tested}"
    assert marked_blocks(README.read_text(), "two-commands"), "the 'Two commands' block is not marked"
    kinds = set(re.findall(r"<!-- readme-test: ([\w-]+) -->", README.read_text()))
    known = {"run", "two-commands", "make-demo", "checked", "docker", "by-hand"}
    assert kinds <= known, f"README marks blocks no test runs: {sorted(kinds - known)}"


def test_every_checked_block_is_run_by_a_test():
    """A block marked `checked` is run by the test that names its heading, which checks what it wrote."""
    tests = "\n".join(path.read_text() for path in (REPO_ROOT / "tests").rglob("test_*.py")
                      if path.name != "test_readme.py")
    blocks = marked_blocks(README.read_text(), "checked")
    assert blocks, "no README block is marked checked"
    for heading, _ in blocks:
        assert f'"{heading}"' in tests, f"no test names the README block {heading!r} (marked checked)"


def test_commands_in_parses_comments_and_continuations():
    body = "python a.py   # run it\n# only a comment\npython b.py --x 1 \\\n    --y 2\n\n"
    assert commands_in(body) == ["python a.py", "python b.py --x 1 --y 2"]


@pytest.mark.integration
@pytest.mark.timeout(900)
@pytest.mark.parametrize("heading,commands", RUN_BLOCKS, ids=[h for h, _ in RUN_BLOCKS])
def test_readme_block_runs(heading, commands, tmp_path):
    result = run_and_clean("\n".join(commands), tmp_path / "stacks")
    assert result.returncode == 0, (f"README block under {heading!r} failed ({result.returncode}):\n"
                                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def test_two_commands():
    """CI runs the README's two commands, each on a line of .ci/run; the blocks marked make-demo are what
    make demo runs. (make demo's runs are CI's, not this test's: each of its suites is a README block here.)"""
    (_, commands), = marked_blocks(README.read_text(), "two-commands")
    assert commands == ["make demo", "make test"], f"the README's two commands changed: {commands}"
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    for command in commands:
        assert re.search(rf"^{command}$", ci, re.M), f".ci/run must run the README's {command!r} on a line"
    demo = make_demo_commands()
    not_in_demo = [c for _, block in marked_blocks(README.read_text(), "make-demo") for c in block if c not in demo]
    assert not not_in_demo, f"README blocks marked make-demo show commands make demo does not run: {not_in_demo}"
    assert marked_blocks(README.read_text(), "make-demo"), "no README block is marked make-demo"


def make_demo_commands() -> set[str]:
    """The commands `make demo` runs (make -n), written as the README writes them: `python` for the venv's."""
    proc = subprocess.run(["make", "-n", "demo"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return {re.sub(r"\S*/bin/python\b", "python", line.strip()) for line in proc.stdout.splitlines()}


def test_korean_readme_commands_are_the_tested_ones():
    """README.ko.md repeats the quick start: every command in it must be one the English README shows."""
    english = "\n".join(body for body in re.findall(r"```[^\n]*\n(.*?)```", README.read_text(), re.S))
    english_commands = set(commands_in(english))
    korean = (REPO_ROOT / "README.ko.md").read_text()
    korean_commands = [c for body in re.findall(r"```[^\n]*\n(.*?)```", korean, re.S) for c in commands_in(body)]
    assert korean_commands, "README.ko.md shows no command"
    missing = [c for c in korean_commands if c not in english_commands]
    assert not missing, f"README.ko.md commands not in README.md (so not tested): {missing}"


class Terminal:
    """A long-running README command whose output we watch, like a person at a second terminal."""

    def __init__(self, command: str, stack_root: Path):
        self.proc = subprocess.Popen(["bash", "-c", command], cwd=REPO_ROOT, env=user_env(stack_root),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     stdin=subprocess.DEVNULL)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def wait_for(self, text: str, timeout: float = 120) -> None:
        def seen() -> tuple[bool, str]:
            output = "".join(self.lines)
            return text in output, output[-500:] or "no output yet"
        wait_until(seen, timeout=timeout, what=f"{text!r} in the output",
                   abort=lambda: f"exited with {self.proc.returncode}" if self.proc.poll() is not None else None)

    def finish(self, timeout: float = 180) -> int:
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return code


BY_HAND = {block[0]: block[1] for block in marked_blocks(README.read_text(), "by-hand")}


@pytest.mark.integration
@pytest.mark.timeout(600)
@pytest.mark.parametrize("heading", sorted(BY_HAND))
def test_fault_by_hand(heading, tmp_path):
    """up; the suite with --fault manual; kill when it asks; start when it asks; down."""
    up, suite, kill, start, down = BY_HAND[heading]
    assert "--fault manual" in suite and " kill " in kill and " start " in start, BY_HAND[heading]
    root = tmp_path / "stacks"
    try:
        assert run_as_user(up, root, 120).returncode == 0, f"{up} failed"
        terminal = Terminal(suite, root)
        try:
            terminal.wait_for("Now kill")
            assert run_as_user(kill, root, 60).returncode == 0, f"{kill} failed"
            terminal.wait_for("now start")
            assert run_as_user(start, root, 60).returncode == 0, f"{start} failed"
            code = terminal.finish()
        finally:
            if terminal.proc.poll() is None:
                terminal.proc.kill()
        assert code == 0, f"{suite} exited {code}:\n{''.join(terminal.lines)[-3000:]}"
    finally:
        assert run_as_user(down, root, 60).returncode == 0, f"{down} failed"
        assert not processes_under(root), f"processes left under {root}"
