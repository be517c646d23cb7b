"""Stack discovery: which local stacks exist and which one a run is about, found the same way everywhere.

Every entry point (the suites, the compatibility runner, stack.py) and every safety rule (a fault's
"is this ours?", ownership) asks here, so a stack started with --state-dir, inside `stack.py run`
($VHC_STACK_STATE) or under $VHC_STACK_ROOT is found by all of them or by none.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from lib.errors import SetupError
from lib.launcher.local_stack import STATE_FILE, LocalStack, recorded_stacks
from lib.launcher.ownership import is_local_stack_host

STATE_ENV = "VHC_STACK_STATE"  # set by `stack.py run` for the command it runs


def chosen_state_dir(env: Mapping[str, str] | None = None) -> Path | None:
    """The state dir named by $VHC_STACK_STATE, if any."""
    env = os.environ if env is None else env
    return Path(env[STATE_ENV]) if env.get(STATE_ENV) else None


def _candidates(topology: str, env: Mapping[str, str] | None) -> list[Path]:
    chosen = chosen_state_dir(env)
    return [*([chosen] if chosen else []), LocalStack.default_state_dir(topology)]


def running_stack(topology: str, env: Mapping[str, str] | None = None) -> LocalStack | None:
    """The running local stack of this topology: $VHC_STACK_STATE first, then .stack/TOPOLOGY.

    A state file that cannot be read is a SetupError (it names the file and the fix): skipping it would
    test the default ports instead, and may fault servers that only look unclaimed.
    """
    for state_dir in _candidates(topology, env):
        if (state_dir / STATE_FILE).exists():
            stack = LocalStack.load(state_dir)
            if stack.topology.name == topology and stack.running():
                return stack
    return None


def stack_serving(topology: str, address: tuple[str, int]) -> tuple[LocalStack, str] | None:
    """The recorded local stack of this topology serving address, and the service's name.

    Local stacks listen on 127.0.0.1 only, so an address on another host (127.0.0.2 included) is
    never one of their services, whatever its port: matching the port alone once SIGKILLed a node of
    the user's local stack while another cluster was under test.
    """
    host, port = address
    if not is_local_stack_host(host):
        return None
    for state_dir in _candidates(topology, None):
        if (state_dir / STATE_FILE).exists():
            stack = LocalStack.load(state_dir)
            if stack.topology.name == topology and (service := stack.service_at(port)):
                return stack, service
    return None


def known_stacks(state_dir: str | Path | None = None) -> tuple[list[LocalStack], list[str]]:
    """--state-dir alone when given; else $VHC_STACK_STATE's stack first, then every stack under .stack/.

    Also returns one line per state file that could not be read, for the caller to report.
    """
    chosen = Path(state_dir) if state_dir else chosen_state_dir()
    first: list[LocalStack] = []
    unreadable: list[str] = []
    if chosen and (chosen / STATE_FILE).exists():
        try:
            first.append(LocalStack.load(chosen))
        except SetupError as exc:
            unreadable.append(str(exc))
    if state_dir:
        return first, unreadable
    chosen_dir = chosen.absolute() if chosen else None
    stacks, more_unreadable = recorded_stacks()
    return first + [s for s in stacks if s.state_dir != chosen_dir], unreadable + more_unreadable
