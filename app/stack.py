"""The local launcher's command line: the compose topologies as local processes, no Docker needed.

  python app/stack.py up ha|cluster|compat [--free-ports]   start and wait until ready
  python app/stack.py status [TOPOLOGY]                      what runs, pids, ports, roles
  python app/stack.py kill SERVICE                           SIGKILL, like docker kill
  python app/stack.py start SERVICE                          start it again, with its data dir
  python app/stack.py down [TOPOLOGY]                        stop everything (default: all stacks)
  python app/stack.py run TOPOLOGY -- COMMAND...             up, run COMMAND, down (always)
  python app/stack.py wait TOPOLOGY --docker                 wait until the compose stack is ready
  python app/stack.py servers [--fetch NAME,...]             the server versions, cached or not; fetch some

up and run take --server NAME (every valkey-server of the stack runs that version, e.g. valkey-8.1) or
--server SERVICE=NAME (one service: `up compat --server redis=valkey-8.1` compares 8.1 with 9.0);
--server beats $VALKEY_SERVER_BIN. docs/servers.md lists the names and where the binaries come from.

--docker runs the same topology from its compose file with docker-compose instead (up, run, down,
wait): ready means every compose healthcheck passes and the init job exited 0, as `up --wait` does.

`run` also starts a small guard in its own session that stops the stack if `run` itself is killed
(SIGKILL, OOM): the servers a COMMAND restarted are nobody's children, so only the guard can stop them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from rich.table import Table

from lib.errors import SetupError
from lib.launcher import process
from lib.launcher.compose_stack import ComposeStack
from lib.launcher.discovery import STATE_ENV, known_stacks
from lib.launcher.local_stack import STATE_FILE, LocalStack
from lib.launcher.servers import ALL_SERVICES, CATALOG, binary_version, cache_root, located, parse_choice, server_binary
from lib.report.report import cli_main, console, err_console
from lib.topology.topology import TOPOLOGY_FILES, load_topology
from lib.util import free_ports

FREE_PORTS_ENV = "VHC_FREE_PORTS"  # =1: up/run use free ports by default (how the README tests run `make demo`)
GUARD_COMMAND = "_guard"  # stack.py _guard STATE_DIR: started by run, not for people
GUARD_STAND_DOWN = b"stopped\n"  # what run writes to the guard once it has stopped its stack itself
COMMAND_GRACE = 5.0  # seconds a COMMAND interrupted by Ctrl-C gets to finish its own cleanup


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C, but the COMMAND of `run` did not get the signal too."""


def _raise_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so `finally: down()` runs."""
    def handler(signum, frame):
        raise Terminated(f"signal {signum}")
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
    return LocalStack(topology, state_dir, port_map, tie_to_parent=tie_to_parent, servers=dict(args.server or ()))


def _find_stack(service: str) -> LocalStack:
    stacks, unreadable = known_stacks()
    for stack in stacks:
        if service in stack.services:
            for problem in unreadable:
                err_console.print(f"[yellow]warning:[/] {problem}", soft_wrap=True)
            return stack
    raise SetupError(f"no running local stack has a service {service!r}: python app/stack.py status"
                     + "".join(f"; {problem}" for problem in unreadable))


def _refuse_local_options(args) -> None:
    if args.state_dir:
        raise SetupError("--state-dir is for local stacks: a compose stack keeps its state in its containers")
    if args.server:
        raise SetupError("--server is for local stacks: compose runs its images (pick versions with VALKEY_IMAGE "
                         "and REDIS_IMAGE, docker-compose.yml)")


def cmd_up(args) -> int:
    if args.docker:
        _refuse_local_options(args)
        stack = ComposeStack(args.topology)
        console.print(f"docker-compose -f {stack.file.name} up -d, then waiting until it is ready ...")
        console.print(f"ready: {stack.up(timeout=args.timeout)}")
        console.print(f"stop it with: python app/stack.py down {args.topology} --docker")
        return 0
    stack = _new_stack(args, tie_to_parent=False)
    console.print(f"starting the {args.topology} stack from {stack.topology.compose_file.name}{_on(args)} ...")
    stack.up(timeout=args.timeout)
    console.print(status_table([stack]))
    where = f"--state-dir {stack.state_dir}" if args.state_dir else args.topology
    console.print(f"ready. State in {stack.state_dir}; stop it with: python app/stack.py down {where}")
    return 0


def cmd_run(args) -> int:
    command = args.command
    if not command:
        raise SetupError("run needs a command: python app/stack.py run ha -- python app/ha_test.py")
    if args.docker:
        _refuse_local_options(args)
        return _run_on_compose(args.topology, command, args.timeout)
    stack = _new_stack(args, tie_to_parent=True)
    console.print(f"starting the {args.topology} stack from {stack.topology.compose_file.name}{_on(args)} ...")
    stack.up(timeout=args.timeout)  # a refused up started nothing, so there is nothing of ours to stop
    guard: int | None = None
    try:
        guard = _start_guard(stack.state_dir)
        console.print(status_table([stack]))
        code = _run_command(command, dict(os.environ, **{STATE_ENV: str(stack.state_dir)}))
        console.print(f"{' '.join(command)} exited with {code}; stopping the {args.topology} stack")
    finally:
        stack.down()
        if guard is not None:  # not reached if a second Ctrl-C cut down() short: the guard finishes it
            _stand_down(guard)
    return code


def _on(args) -> str:
    """' on valkey-8.1' for the start line of a stack started with --server."""
    chosen = [name if service == ALL_SERVICES else f"{service}={name}" for service, name in args.server or ()]
    return f" on {', '.join(chosen)}" if chosen else ""


def cmd_servers(args) -> int:
    """The catalog: name, source, version, where the binary is (if it is here); --fetch downloads first."""
    for name in args.fetch or ():
        console.print(f"{name}: {server_binary(name)}", soft_wrap=True)
    table = Table(title=f"server versions (cache: {cache_root()})")
    for column in ("server", "source", "version"):
        table.add_column(column)
    table.add_column("binary", overflow="fold")
    for name, spec in sorted(CATALOG.items()):
        binary = located(name)
        version = binary_version(binary) if binary else ""
        where = str(binary) if binary else f"[dim]not fetched: python app/stack.py servers --fetch {name}[/]"
        table.add_row(name, spec.source, version, where)
    console.print(table)
    return 0


def _server_choice(text: str) -> tuple[str, str]:
    try:
        return parse_choice(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _server_names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in CATALOG]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown server {', '.join(unknown) or repr(text)}: choose from "
                                         f"{', '.join(sorted(CATALOG))}")
    return names


def _run_on_compose(topology: str, command: list[str], timeout: float) -> int:
    """up (compose), COMMAND, down -v: always, Ctrl-C and SIGTERM included."""
    stack = ComposeStack(topology)
    console.print(f"docker-compose -f {stack.file.name} up -d, then waiting until it is ready ...")
    with stack:
        console.print(f"ready: {stack.up(timeout=timeout)}")
        code = _run_command(command, dict(os.environ))
        console.print(f"{' '.join(command)} exited with {code}; docker-compose -f {stack.file.name} down -v")
    return code


def cmd_wait(args) -> int:
    if not args.docker:
        raise SetupError("wait is for compose stacks (python app/stack.py wait TOPOLOGY --docker): "
                         "python app/stack.py up already waits until a local stack is ready")
    console.print(f"ready: {ComposeStack(args.topology).wait_ready(args.timeout)}")
    return 0


def _run_command(command: list[str], env: dict[str, str]) -> int:
    """COMMAND's exit code; interrupted, it is stopped before the interruption goes on."""
    try:
        child = process.start_command(command, env=env)
    except OSError as exc:
        raise SetupError(f"cannot run {command[0]}: {exc.strerror}: check the command after --") from None
    try:
        return child.wait()
    except KeyboardInterrupt as interrupt:
        if not isinstance(interrupt, Terminated):  # a terminal's Ctrl-C reached it too: let it clean up
            process.wait_dead(child.pid, COMMAND_GRACE)
        process.stop(child.pid)
        raise


def _start_guard(state_dir: Path) -> int:
    """Start `stack.py _guard STATE_DIR` in its own session; return the pipe end that keeps it waiting.

    Only this process holds the write end (pipes are not inherited), so the guard sees end of file
    exactly when run exits, however it exits.
    """
    read_end, write_end = os.pipe()
    try:
        subprocess.Popen([sys.executable, str(Path(__file__).resolve()), GUARD_COMMAND, str(state_dir)],
                         stdin=read_end, stdout=subprocess.DEVNULL, start_new_session=True)
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    return write_end


def _stand_down(guard: int) -> None:
    with contextlib.suppress(BrokenPipeError), os.fdopen(guard, "wb") as pipe:
        pipe.write(GUARD_STAND_DOWN)


def run_guard(state_dir: Path) -> int:
    """Wait until the `run` that started us exits; if it did not stop its stack, stop it from disk."""
    told = sys.stdin.buffer.read()
    if told == GUARD_STAND_DOWN or not (state_dir / STATE_FILE).exists():
        return 0
    stack = LocalStack.load(state_dir)
    stack.down()
    err_console.print(f"stack.py run ended without stopping its {stack.topology.name} stack: stopped it ({state_dir})",
                      soft_wrap=True)
    return 0


def cmd_status(args) -> int:
    stacks, unreadable = known_stacks(args.state_dir)
    stacks = [s for s in stacks if args.topology in (None, s.topology.name)]
    if stacks:
        console.print(status_table(stacks))
    elif not unreadable:
        console.print("no local stack is recorded (python app/stack.py up ha|cluster|compat)")
    _report_unreadable(unreadable)
    return 0


def _report_unreadable(unreadable: list[str]) -> None:
    """State files that could not be read are errors (exit 2), reported after what could be done."""
    for problem in unreadable[:-1]:
        err_console.print(f"[bold red]error:[/] {problem}", soft_wrap=True)
    if unreadable:
        raise SetupError(unreadable[-1])


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
    if getattr(args, "docker", False):
        for topology in [args.topology] if args.topology else sorted(TOPOLOGY_FILES):
            stack = ComposeStack(topology, started=True)
            stack.down()
            console.print(f"docker-compose -f {stack.file.name} down -v: done")
        return 0
    stacks, unreadable = known_stacks(args.state_dir)
    stacks = [s for s in stacks if args.topology in (None, s.topology.name)]
    for stack in stacks:
        healed = stack.down()
        console.print(f"stopped the {stack.topology.name} stack ({stack.state_dir})")
        if healed:
            console.print(f"removed the partition rules a run left behind: iptables chains {', '.join(healed)}")
    if not stacks and not unreadable:
        console.print("nothing to stop")
    _report_unreadable(unreadable)
    return 0


def status_table(stacks: list[LocalStack]) -> Table:
    from lib.launcher.readiness import describe_role

    table = Table(title="local stacks")
    chosen = any(svc.server for stack in stacks for svc in stack.services.values())  # a column only with --server
    for column in ("stack", "service", "kind", "port", "pid", "state", "role", *(["server"] if chosen else [])):
        table.add_column(column)
    for stack in stacks:
        for name, svc in stack.services.items():
            alive = process.is_alive(svc.pid)
            role = describe_role(*stack.endpoint(name), svc.kind) if alive and svc.port else ""
            state = "[green]running[/]" if alive else "[red]stopped[/]"
            if svc.kind == "job" and not alive:
                state = "one-shot job (runs during up)"
            table.add_row(stack.topology.name, name, svc.kind, str(svc.port or ""), str(svc.pid or ""), state, role,
                          *([svc.server or "default"] if chosen else []))
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
        p.add_argument("--docker", action="store_true", help="run the compose file with docker-compose instead")
        p.add_argument("--server", action="append", type=_server_choice, metavar="NAME|SERVICE=NAME",
                       help=f"run another server version ({', '.join(sorted(CATALOG))}): NAME for every "
                            "valkey-server, SERVICE=NAME for one service (repeatable); beats $VALKEY_SERVER_BIN")
        if name == "run":
            p.epilog = "run TOPOLOGY [options] -- COMMAND...: the command runs once the stack is ready"
        p.set_defaults(func=func)
    for name, func in (("status", cmd_status), ("down", cmd_down)):
        p = sub.add_parser(name)
        p.add_argument("topology", nargs="?", choices=sorted(TOPOLOGY_FILES))
        p.add_argument("--state-dir", help="a stack started with up --state-dir (default: every stack under .stack/)")
        if name == "down":
            p.add_argument("--docker", action="store_true", help="docker-compose down -v the compose file(s)")
        p.set_defaults(func=func)
    p = sub.add_parser("wait")
    p.add_argument("topology", choices=sorted(TOPOLOGY_FILES))
    p.add_argument("--docker", action="store_true", help="a stack started with docker-compose up -d")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait (default 120)")
    p.set_defaults(func=cmd_wait)
    p = sub.add_parser("servers", help="list the server versions, fetch some into the cache")
    p.add_argument("--fetch", type=_server_names, metavar="NAME,...", help="download these first (docs/servers.md)")
    p.set_defaults(func=cmd_servers)
    for name, func in (("kill", cmd_kill), ("start", cmd_start)):
        p = sub.add_parser(name)
        p.add_argument("service")
        p.set_defaults(func=func)
    return parser


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] == [GUARD_COMMAND] and len(argv) == 2:
        _raise_on_sigterm()
        return run_guard(Path(argv[1]))
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
