"""Command-line options every failover suite shares (ha_test.py, cluster_test.py), parsed one way."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from lib.clients.libraries.base import CLIENTS, client_names
from lib.description import Loop, TestDescription
from lib.errors import SetupError
from lib.faults import registry
from lib.report.plot import require_matplotlib
from lib.workload.compared_clients import WRITE_PAUSE_S

DEFAULT_CLIENT_TIMEOUT_S = 30.0  # --client-timeout


def fault_help(topology: str, suite: str, argv: list[str] | None) -> str:
    """--fault's help: every fault that applies, from its own file; only built when --help is asked for (it imports
    every fault file)."""
    if not {"-h", "--help"} & set(sys.argv[1:] if argv is None else argv):
        return "the fault to inject (default auto); --help lists each"
    return "the fault to inject (default auto): " + "; ".join(registry.help_lines(topology, suite))


def add_failover_options(parser: argparse.ArgumentParser, *, fault_help: str, host_map_fallback: str) -> None:
    parser.add_argument("--fault", choices=registry.names(), help=fault_help)
    parser.add_argument("--fault-file", metavar="PATH",
                        help="your own fault: a Python file defining one lib.faults.fault.Fault subclass (inject, heal "
                             "and its facts; docs/faults.md), run under the same measurement as the built-in ones")
    parser.set_defaults(fault_class=None)  # resolved from --fault or --fault-file (resolve_fault)
    parser.add_argument("--password", help="password of the data nodes (AUTH)")
    parser.add_argument("--host-map", action="append", default=[], metavar="NAME=HOST",
                        help=f"reach an announced host NAME at HOST (unresolvable names map to {host_map_fallback})")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON (with the failover's history)")
    parser.add_argument("--plot", metavar="PATH", help="write the failover timeline as a PNG (needs matplotlib)")
    parser.add_argument("--recovery-timeout", type=float, default=60.0, metavar="S")
    parser.add_argument("--manual-timeout", type=float, default=300.0, metavar="S",
                        help="how long --fault manual waits for the kill (and for the restart)")
    parser.add_argument("--kill-cmd", metavar="CMD", help="--fault exec: the shell command that injects the fault "
                        "(e.g. 'kubectl delete pod valkey-0'); the harness measures as usual")
    parser.add_argument("--restore-cmd", metavar="CMD", help="--fault exec: the shell command that heals it")
    parser.add_argument("--min-replicas-to-write", type=int, metavar="N",
                        help="CONFIG SET min-replicas-to-write N on the data nodes for this run (put back afterwards)")
    parser.add_argument("--min-replicas-max-lag", type=int, metavar="S",
                        help="with --min-replicas-to-write: CONFIG SET min-replicas-max-lag S (seconds)")
    parser.add_argument("--client", type=_clients, metavar="NAME[,NAME]",
                        help=f"also write through these client libraries during the fault, side by side, and "
                             f"report each one's row ({', '.join(CLIENTS)}; ours is the harness's own)")
    parser.add_argument("--client-timeout", type=float, metavar="S",
                        help="with --client: how long after the promotion each library may take to write again "
                             "before its row says it did not (default 30)")
    parser.add_argument("--recheck", metavar="FILE.json",
                        help="recompute the verdicts from a saved --json file; no server is touched")
    parser.add_argument("--allow-destructive", action="store_true",
                        help="allow faults, failovers, slot migrations and CONFIG SET on servers the harness did "
                             "not start (its local stacks, this repo's compose containers); the roles, slots and "
                             "config it changes are still put back")


def _clients(text: str) -> list[str]:
    try:
        return client_names(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_host_map(entries: list[str], example: str) -> dict[str, str]:
    """['valkey-master=10.0.0.5'] -> {'valkey-master': '10.0.0.5'}; a bad entry is a one-line SetupError."""
    host_map = {}
    for entry in entries:
        name, sep, host = entry.partition("=")
        if not sep or not name or not host:
            raise SetupError(f"--host-map {entry!r}: expected NAME=HOST, e.g. {example}")
        host_map[name] = host
    return host_map


def require_writable_output(path: str | None, flag: str = "--json") -> None:
    """Refuse, before any server is touched, an output path that could not be written after the run.

    A destructive run whose results cannot be saved is lost work: check the directory now, not at the end.
    """
    if not path:
        return
    example = f"{flag} results/run{Path(path).suffix or '.json'}"
    out = Path(path)
    if out.is_dir():
        raise SetupError(f"{flag} {path}: is a directory; give a file path, e.g. {example}")
    parent = out.parent if str(out.parent) else Path(".")
    existing = next((p for p in (parent, *parent.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise SetupError(f"{flag} {path}: {existing} is not a directory")
    try:  # root passes os.access everywhere: only a real write tells (e.g. /proc, a read-only mount)
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".vhc-write-check-"):
            pass
    except OSError as exc:
        raise SetupError(f"{flag} {path}: cannot create a file in {existing} ({exc.strerror}); choose a path you can "
                         f"write, e.g. {example}") from None
    if out.exists() and not os.access(out, os.W_OK):
        raise SetupError(f"{flag} {path}: the file is not writable; choose another path")


def check_outputs(args: argparse.Namespace) -> None:
    """--json and --plot, checked before any server is touched: a run whose results are lost is wasted."""
    require_writable_output(args.json)
    if getattr(args, "plot", None):
        require_matplotlib()
        require_writable_output(args.plot, "--plot")


def check_client_options(args: argparse.Namespace, suite: str) -> None:
    """--client: a failover to watch, a suite that runs one, and every named library importable."""
    from lib.clients.libraries.base import library_module

    if not getattr(args, "client", None):
        if getattr(args, "client_timeout", None) is not None:
            raise SetupError("--client-timeout goes with --client NAME[,NAME]")
        return
    if args.client_timeout is None:
        args.client_timeout = DEFAULT_CLIENT_TIMEOUT_S
    if suite == "cache":
        raise SetupError("--client goes with ha_test.py and cluster_test.py (the cache suite's clients are its own)")
    if args.fault == registry.NONE:
        raise SetupError(f"--client compares clients during a failover: drop --fault {registry.NONE}")
    if args.client_timeout <= 0:
        raise SetupError(f"--client-timeout {args.client_timeout}: give a positive number of seconds")
    for name in args.client:
        try:
            library_module(name)
        except ImportError as exc:
            raise SetupError(str(exc)) from None


def check_fault_options(args: argparse.Namespace, suite: str, topology: str) -> None:
    """The fault options that belong together, checked before any server is touched (one line, exit 2).

    Resolves the fault: args.fault_class is --fault-file's class or the registry's for --fault (None: no fault), and
    args.fault its --fault value (the default's, or the file's fault name).
    """
    if args.fault_file is not None and args.fault is not None and args.fault_class is None:
        raise SetupError(f"--fault {args.fault} and --fault-file {args.fault_file}: give one of them")
    resolve_fault(args)
    check_client_options(args, suite)
    given = {name: getattr(args, name) for name in ("kill_cmd", "restore_cmd") if getattr(args, name, None)}
    if (cls := args.fault_class) is not None:
        if why := registry.applies(cls, topology, suite):
            raise SetupError(why)
        cls.check_options(fault_options(args))
        given = {name: value for name, value in given.items() if name not in cls.options}
    if given:
        owners = [value for value in registry.FAULTS if set(given) <= set(registry.fault_class(value).options)]
        flags = " and ".join(f"--{name.replace('_', '-')}" for name in given)
        raise SetupError(f"{flags} go{'es' if len(given) == 1 else ''} with --fault {' or '.join(owners)}")
    if args.min_replicas_to_write is not None and args.min_replicas_to_write < 0:
        raise SetupError(f"--min-replicas-to-write {args.min_replicas_to_write}: give 0 or more replicas")
    if args.min_replicas_max_lag is not None:
        if args.min_replicas_to_write is None:
            raise SetupError("--min-replicas-max-lag goes with --min-replicas-to-write N")
        if args.min_replicas_max_lag < 1:
            raise SetupError(f"--min-replicas-max-lag {args.min_replicas_max_lag}: give 1 second or more")


def resolve_fault(args: argparse.Namespace) -> type | None:
    """args.fault_class from --fault-file or --fault (None: --fault none), and args.fault its value; idempotent."""
    if args.fault_class is None:
        args.fault_class = registry.chosen(args.fault, args.fault_file)
        args.fault = args.fault_class.name if args.fault_file else (args.fault or registry.DEFAULT)
    return args.fault_class


def fault_options(test: argparse.Namespace | TestDescription) -> dict:
    """What a fault may take from the command line (FaultContext.options), from the namespace or the description."""
    manual = test.manual_timeout_s if isinstance(test, TestDescription) else test.manual_timeout
    return {"fault": test.fault, "kill_cmd": test.kill_cmd, "restore_cmd": test.restore_cmd, "manual_timeout": manual}


def describe(args: argparse.Namespace, suite: str, topology: str, loops: list[Loop]) -> TestDescription:
    """The test description from the command line, once its options were checked (check_fault_options): the
    one place an argparse namespace becomes what the rest of the harness gets."""
    endpoints = getattr(args, "sentinel", None) or getattr(args, "node", None) or []
    clients = list(args.client or []) if hasattr(args, "client") else []
    workload = [*loops, *([Loop("clients", "client *", WRITE_PAUSE_S)] if clients else [])]
    return TestDescription(
        suite, topology, list(endpoints), getattr(args, "master_name", None),
        parse_host_map(args.host_map, "valkey-master=10.0.0.5" if topology == "sentinel" else "node-7000=10.0.0.5"),
        args.fault, args.fault_file, args.kill_cmd, args.restore_cmd, clients, getattr(args, "client_timeout", None),
        args.min_replicas_to_write, args.min_replicas_max_lag, args.recovery_timeout, args.manual_timeout,
        args.allow_destructive, args.json, args.plot, workload=workload, password=args.password,
        sentinel_password=getattr(args, "sentinel_password", None))
