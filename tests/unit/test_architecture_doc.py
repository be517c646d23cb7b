"""docs/architecture.md stays true: every module under app/lib is in its index, and every module it names exists."""

from __future__ import annotations

import re

from lib.util import REPO_ROOT

DOC = REPO_ROOT / "docs" / "architecture.md"
LIB = REPO_ROOT / "app" / "lib"


def modules() -> set[str]:
    return {f"lib/{p.relative_to(LIB).as_posix()}" for p in LIB.rglob("*.py")
            if p.name != "__init__.py" and "__pycache__" not in p.parts}


def test_every_module_under_app_lib_is_in_the_architecture_index():
    text = DOC.read_text()
    missing = sorted(m for m in modules() if f"`{m}`" not in text)
    assert not missing, f"docs/architecture.md does not name {missing}: add a row to its module index"


def test_every_module_the_architecture_doc_names_exists():
    named = set(re.findall(r"\blib/[\w/]+\.py\b", DOC.read_text()))
    gone = sorted(named - modules())
    assert not gone, f"docs/architecture.md names modules that do not exist: {gone}"
