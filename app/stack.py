"""The local launcher's command line: the compose topologies as local processes, no Docker needed.

  python app/stack.py up ha|cluster|compat [--free-ports]   start and wait until ready
  python app/stack.py status [TOPOLOGY]                      what runs, pids, ports, roles
  python app/stack.py kill SERVICE                           SIGKILL, like docker kill
  python app/stack.py start SERVICE                          start it again, with its data dir
  python app/stack.py down [TOPOLOGY]                        stop everything (default: all stacks)
  python app/stack.py run TOPOLOGY -- COMMAND...             up, run COMMAND, down (always)
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from rich.table import Table

from lib import process
from lib.local_stack import STATE_FILE, LocalStack, running_stacks
from lib.report import SetupError, cli_main, console
from lib.topology import TOPOLOGY_FILES, load_topology
from lib.util import free_ports

STATE_ENV = "VHC_STACK_STATE"
FREE_PORTS_ENV = "VHC_FREE_PORTS"  # =1: up/run use free ports by default (how the README tests run `make demo`)


def _raise_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so `finally: down()` runs."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def _new_stack(args, *, tie_to_parent: bool) -> LocalStack:
    topology = load_topology(args.topology)
    port_map = {}
    if args.free_ports:
        ports = [s.port for s in topology.services.values() if s.port]
        offset = 10000 if args.topology == "cluster" else None
        port_map = dict(zip(ports, free_ports(len(ports), also_free_offset=offset), strict=True))
    state_dir = Path(args.state_dir) if args.state_dir else LocalStack.default_state_dir(args.topology)
    return LocalStack(topology, state_dir, port_map, tie_to_parent=tie_to_parent)


def _known_stacks(state_dir: str | None = None) -> list[LocalStack]:
    """--state-dir, else $VHC_STACK_STATE (set inside `stack.py run`), plus every stack under .stack/."""
    stacks = running_stacks()
    chosen = state_dir or os.environ.get(STATE_ENV)
    if chosen and (Path(chosen) / STATE_FILE).exists():
        stacks.insert(0, LocalStack.load(Path(chosen)))
        if state_dir:
            return stacks[:1]
    return stacks


def _find_stack(service: str) -> LocalStack:
    for stack in _known_stacks():
        if service in stack.services:
            return stack
    raise SetupError(f"no running local stack has a service {service!r}: python app/stack.py status")


def cmd_up(args) -> int:
    stack = _new_stack(args, tie_to_parent=False)
    console.print(f"starting the {args.topology} stack from {stack.topology.compose_file.name} ...")
    stack.up(timeout=args.timeout)
    console.print(status_table([stack]))
    console.print(f"ready. State in {stack.state_dir}; stop it with: python app/stack.py down {args.topology}")
    return 0


def cmd_run(args) -> int:
    command = args.command
    if not command:
        raise SetupError("run needs a command: python app/stack.py run ha -- python app/ha_test.py")
    stack = _new_stack(args, tie_to_parent=True)
    console.print(f"starting the {args.topology} stack from {stack.topology.compose_file.name} ...")
    with stack:
        stack.up(timeout=args.timeout)
        console.print(status_table([stack]))
        env = dict(os.environ, **{STATE_ENV: str(stack.state_dir)})
        code = subprocess.call(command, env=env)
        console.print(f"{' '.join(command)} exited with {code}; stopping the {args.topology} stack")
    return code


def cmd_status(args) -> int:
    stacks = [s for s in _known_stacks(args.state_dir) if args.topology in (None, s.topology.name)]
    if not stacks:
        console.print("no local stack is recorded (python app/stack.py up ha|cluster|compat)")
        return 0
    console.print(status_table(stacks))
    return 0


def cmd_kill(args) -> int:
    stack = _find_stack(args.service)
    pid = stack.kill(args.service)
    console.print(f"killed {args.service} (pid {pid}) with SIGKILL")
    return 0


def cmd_start(args) -> int:
    stack = _find_stack(args.service)
    pid = stack.start(args.service)
    console.print(f"started {args.service} (pid {pid}); it answers PING")
    return 0


def cmd_down(args) -> int:
    stacks = [s for s in _known_stacks(args.state_dir) if args.topology in (None, s.topology.name)]
    for stack in stacks:
        stack.down()
        console.print(f"stopped the {stack.topology.name} stack ({stack.state_dir})")
    if not stacks:
        console.print("nothing to stop")
    return 0


def status_table(stacks: list[LocalStack]) -> Table:
    from lib.readiness import describe_role

    table = Table(title="local stacks")
    for column in ("stack", "service", "kind", "port", "pid", "state", "role"):
        table.add_column(column)
    for stack in stacks:
        for name, svc in stack.services.items():
            alive = process.is_alive(svc.pid)
            role = describe_role(*stack.endpoint(name), svc.kind) if alive and svc.port else ""
            state = "[green]running[/]" if alive else "[red]stopped[/]"
            if svc.kind == "job" and not alive:
                state = "one-shot job (runs during up)"
            table.add_row(stack.topology.name, name, svc.kind, str(svc.port or ""), str(svc.pid or ""), state, role)
    return table


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python app/stack.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name, func in (("up", cmd_up), ("run", cmd_run)):
        p = sub.add_parser(name)
        p.add_argument("topology", choices=sorted(TOPOLOGY_FILES))
        p.add_argument("--free-ports", action="store_true", default=os.environ.get(FREE_PORTS_ENV) == "1",
                       help=f"use free ports instead of the compose ports (default when ${FREE_PORTS_ENV}=1)")
        p.add_argument("--state-dir",
                       help="where data, logs and state go (default $VHC_STACK_ROOT/TOPOLOGY, else .stack/TOPOLOGY)")
        p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for ready (default 60)")
        if name == "run":
            p.epilog = "run TOPOLOGY [options] -- COMMAND...: the command runs once the stack is ready"
        p.set_defaults(func=func)
    for name, func in (("status", cmd_status), ("down", cmd_down)):
        p = sub.add_parser(name)
        p.add_argument("topology", nargs="?", choices=sorted(TOPOLOGY_FILES))
        p.add_argument("--state-dir", help="a stack started with up --state-dir (default: every stack under .stack/)")
        p.set_defaults(func=func)
    for name, func in (("kill", cmd_kill), ("start", cmd_start)):
        p = sub.add_parser(name)
        p.add_argument("service")
        p.set_defaults(func=func)
    return parser


def main() -> int:
    argv = sys.argv[1:]
    command: list[str] = []
    if "--" in argv:  # run ha [options] -- COMMAND...: everything after -- is the command, verbatim
        argv, command = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    args = build_parser().parse_args(argv)
    args.command = command
    _raise_on_sigterm()
    return args.func(args)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    cli_main(main)
