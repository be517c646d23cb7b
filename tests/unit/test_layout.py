"""The scripts in app/ are thin entry points of their suites: the shape issue 16 asked for, kept by a test."""

from __future__ import annotations

import ast

import pytest

from lib.suites import cache, cluster, ha
from lib.util import REPO_ROOT

APP = REPO_ROOT / "app"
SUITES = {"ha_test.py": ha.DESCRIPTION, "cluster_test.py": cluster.DESCRIPTION, "cache_test.py": cache.DESCRIPTION}
SCRIPTS = ("ha_test", "cluster_test", "cache_test", "test_runner", "stack")


@pytest.mark.parametrize("script", sorted(SUITES))
def test_the_help_line_is_the_scripts_own_first_docstring_line(script):
    tree = ast.parse((APP / script).read_text())
    first_line = ast.get_docstring(tree).splitlines()[0]
    assert SUITES[script] == first_line, f"{script}: --help says {SUITES[script]!r}, the script says {first_line!r}"


@pytest.mark.parametrize("script", sorted(SUITES))
def test_a_failover_script_only_hands_its_suite_to_the_skeleton(script):
    tree = ast.parse((APP / script).read_text())
    functions = [node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef)]
    assert functions == ["main"], f"{script} defines {functions}: checks and flow belong in lib/suites and lib/checks"


@pytest.mark.parametrize("path", sorted(p.relative_to(APP) for p in APP.rglob("*.py")), ids=str)
def test_no_module_imports_a_script(path):
    tree = ast.parse((APP / path).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & set(SCRIPTS), f"{path} imports the script(s) {sorted(imported & set(SCRIPTS))}"


# The roles, lowest first: a module may import from its own role and the ones before it, never after.
# report and suites sit on top; ha_client, cluster_client, util, errors, events, waits, interrupts are shared.
ROLES = ("topology", "launcher", "clients", "workload", "faults", "phases", "checks", "report", "suites")


@pytest.mark.parametrize("role", ROLES[:-1])
def test_a_role_imports_nothing_from_the_roles_above_it(role):
    above = set(ROLES[ROLES.index(role) + 1:])
    wrong = []
    for path in sorted((APP / "lib" / role).glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lib."):
                target = node.module.split(".")[1]
                if target in above:
                    wrong.append(f"{path.name}:{node.lineno} imports {node.module}")
    assert not wrong, f"lib/{role} reaches up the layers: {wrong}"
