"""Every unit test: waits give up after 50 ms instead of 30-60 s (nothing here waits for a server)."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import pytest

import lib
from lib import waits

SHORT_WAIT_S = 0.05
# Load every library module once, so that the patch below reaches them all, whichever a test imports.
for _module in pkgutil.walk_packages(lib.__path__, "lib."):
    importlib.import_module(_module.name)


@pytest.fixture(autouse=True)
def short_waits(monkeypatch):
    """The real wait_until (same polling, same WaitTimeout), with every deadline cut to 50 ms.

    Patched in every loaded module that imported it by name, so moving a check between modules
    cannot silently give a unit test a 60 s wait.
    """
    def wait_briefly(check, *, timeout: float, what: str, **kwargs):
        return waits.wait_until(check, timeout=min(timeout, SHORT_WAIT_S), what=what, **kwargs)

    for module in list(sys.modules.values()):
        if module is not waits and getattr(module, "wait_until", None) is waits.wait_until:
            monkeypatch.setattr(module, "wait_until", wait_briefly)


def pytest_collection_modifyitems(config, items):
    """Nothing under tests/unit may start a server: make test's server tier does not even collect this folder
    (--ignore=tests/unit, Makefile), so a test marked integration or docker here would never run."""
    misplaced = [item.nodeid for item in items if "tests/unit/" in item.nodeid
                 and (item.get_closest_marker("integration") or item.get_closest_marker("docker"))]
    if misplaced:
        raise pytest.UsageError(f"tests/unit holds tests that start servers; move them beside it: {misplaced}")
