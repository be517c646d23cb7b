"""Every fault, one line each: the --fault value and the file that says everything about it.

A new fault is one file under lib/faults/ and one line here. --fault-file PATH loads a user's file written to the
same contract (lib/faults/fault.py, docs/faults.md). The suites' --fault choices and help come from here.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from pathlib import Path

from lib.errors import SetupError
from lib.faults.fault import Fault

FAULTS = {
    "auto": "lib.faults.kill",
    "local": "lib.faults.kill",
    "docker": "lib.faults.kill",
    "manual": "lib.faults.manual",
    "graceful": "lib.faults.graceful",
    "coordinated": "lib.faults.coordinated",
    "pause": "lib.faults.pause",
    "partition": "lib.faults.partition",
    "sigterm": "lib.faults.sigterm",
    "exec": "lib.faults.exec",
    "replica-kill": "lib.faults.replica_kill",
    "quorum-loss": "lib.faults.quorum_loss",
    "shard-loss": "lib.faults.shard_loss",
    "replica-pause": "lib.faults.replica_pause",
}
NONE = "none"  # no fault: the checks before it run, the failover is skipped
DEFAULT = "auto"  # the suites' --fault default: the kill


def names() -> list[str]:
    """Every --fault value, `none` last."""
    return [*FAULTS, NONE]


def fault_class(name: str) -> type[Fault]:
    """The Fault subclass answering to a --fault value (its file is imported only now)."""
    module = importlib.import_module(FAULTS[name])
    return _the_fault(module, f"{FAULTS[name]} (--fault {name})", name)


def chosen(name: str | None, file: str | None) -> type[Fault] | None:
    """The fault a run asked for: --fault-file's, else --fault's (None: --fault none)."""
    if file is not None:
        return load_file(file)
    return None if (name or DEFAULT) == NONE else fault_class(name or DEFAULT)


def load_file(path: str) -> type[Fault]:
    """--fault-file PATH: the one Fault subclass a user's Python file defines; a SetupError says what is wrong."""
    file = Path(path)
    if not file.is_file():
        raise SetupError(f"--fault-file {path}: no such file (a Python file defining one lib.faults.fault.Fault "
                         "subclass; docs/faults.md has an example)")
    spec = importlib.util.spec_from_file_location(f"vhc_fault_file_{file.stem}", file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's file: say what broke, in one line
        raise SetupError(f"--fault-file {path}: loading it failed: {type(exc).__name__}: {exc}") from None
    return _the_fault(module, f"--fault-file {path}", None)


def _the_fault(module: object, where: str, name: str | None) -> type[Fault]:
    found = [cls for _, cls in inspect.getmembers(module, inspect.isclass)
             if issubclass(cls, Fault) and cls.__module__ == getattr(module, "__name__", None) and cls.name
             and (name is None or name in (cls.names or (cls.name,)))]
    if len(found) != 1:
        raise SetupError(f"{where}: expected one Fault subclass with a name (class attribute `name`), found "
                         f"{len(found)}: {', '.join(c.__name__ for c in found) or 'none'} (docs/faults.md)")
    return found[0]


def applies(cls: type[Fault], topology: str, suite: str) -> str | None:
    """Why the fault does not apply to this topology or suite (one line), None when it does."""
    value = cls.name
    if topology not in cls.topologies:
        other = {"sentinel": "ha_test.py", "cluster": "cluster_test.py"}
        where = " or ".join(other[t] for t in cls.topologies)
        return f"--fault {value} does not apply to the {suite} suite: it is a fault of {where}"
    if suite == "cache" and cls.not_for_cache:
        return (f"--fault {value} does not apply to the cache suite: {cls.not_for_cache}; use python "
                f"app/cluster_test.py --fault {value}")
    return None


def help_lines(topology: str, suite: str) -> list[str]:
    """'name: help' for every fault that applies (every fault file is imported: only for --help)."""
    lines = []
    for value in FAULTS:
        cls = fault_class(value)
        if applies(cls, topology, suite) is None:
            lines.append(f"{value}: {cls.helps.get(value, cls.help)}")
    return [*lines, f"{NONE}: no fault (the checks before the failover only)"]


def unattended(topology: str, suite: str) -> list[str]:
    """The faults a benchmark can run with no person and no user command, each once (its file's first name)."""
    found: list[str] = []
    for value in FAULTS:
        cls = fault_class(value)
        if cls.unattended and value == (cls.names or (cls.name,))[0] and applies(cls, topology, suite) is None:
            found.append(value)
    return found
