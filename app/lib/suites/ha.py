"""The HA suite: find the master through the sentinels, fail it over, and check what a client saw.

HASuite parses and prepares (the test description, target, reachability, fault, ownership: nothing written yet)
and hands over an HARun (ha_run.py): the phases in order, each recorded in one history, then the checks over it.
Beside it: the faults (ha_faults.py), what may be done to whose servers (ha_ownership.py), what the run changed
(ha_session.py) and what an interrupt must undo (ha_undo.py). The phases are lib/phases/ha_phases.py, the checks
lib/checks/ha_checks.judge; tables and progress go through the Output.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator

from lib.description import Loop, TestDescription
from lib.ha_client import Address, HAClient
from lib.history import PINNED, PLAIN, PROBE, WRITER, History
from lib.launcher.discovery import running_stack
from lib.report.ha_report import manual_kill_view
from lib.suites.cli import add_failover_options, check_fault_options, describe, fault_help
from lib.suites.ha_faults import build_fault
from lib.suites.ha_ownership import config_for_run, require_ownership
from lib.suites.ha_run import HARun
from lib.suites.ha_session import Session, Target
from lib.suites.skeleton import Output
from lib.util import key_namespace, parse_endpoint

SENTINELS_ENV = "VHC_SENTINELS"
DEFAULT_MASTER_NAME = "myvalkey"
# The loops beside the fault (lib/workload/scheduler.py): our client's writer (SET + WAIT 1 every ~2 ms), the
# independent 5 ms probe and the stock redis-py Sentinel client; the writer kept on the old master when the fault
# pins one; the compared libraries with --client (lib/suites/cli.describe).
LOOPS = [Loop("writer", WRITER, 0.002), Loop("probe", PROBE, 0.005), Loop("plain", PLAIN, 0.005)]
PINNED_LOOP = Loop("pinned", PINNED, 0.002)
CHECKS = ["crud", "master_kill", "new_master", "reconnect"]
DEFAULT_SENTINELS = [("127.0.0.1", 26379), ("127.0.0.1", 26380), ("127.0.0.1", 26381)]
DESCRIPTION = "Sentinel HA check: find the master through the sentinels, fail it over, measure what a client sees."


class HASuite:
    name = "ha"

    def __init__(self, argv: list[str] | None = None):
        self.argv = argv  # --help lists every fault's own help (it imports every fault file)

    def build_parser(self) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog="python app/ha_test.py", description=DESCRIPTION)
        parser.add_argument("--sentinel", action="append", metavar="HOST:PORT",
                            help=f"a sentinel (repeat for each); default: ${SENTINELS_ENV}, the local stack, "
                                 "else 127.0.0.1:26379-26381")
        parser.add_argument("--master-name", default=DEFAULT_MASTER_NAME,
                            help=f"the name the sentinels monitor the master under (default {DEFAULT_MASTER_NAME})")
        parser.add_argument("--sentinel-password", help="password of the sentinels, if they have one")
        add_failover_options(parser, fault_help=fault_help("sentinel", "ha", self.argv),
                             host_map_fallback="the sentinel's host")
        return parser

    @contextlib.contextmanager
    def prepare(self, args: argparse.Namespace, out: Output) -> Iterator[HARun]:
        check_fault_options(args, "ha", "sentinel")
        test = describe(args, "ha", "sentinel", LOOPS)
        target = resolve_target(test)
        ha = HAClient(target.sentinels, test.master_name or DEFAULT_MASTER_NAME, password=test.password,
                      sentinel_password=test.sentinel_password, host_map=test.host_map)
        try:
            yield prepare_run(test, ha, target, Session(key_namespace("ha")), out)
        finally:
            ha.close()


def resolve_target(test: TestDescription) -> Target:
    """Sentinel endpoints: --sentinel flags, then $VHC_SENTINELS, then a local stack's record, then defaults."""
    if test.endpoints:
        return Target([parse_endpoint(s, example="127.0.0.1:26379") for s in test.endpoints], "--sentinel")
    if env := os.environ.get(SENTINELS_ENV):
        sentinels = [parse_endpoint(s, example="127.0.0.1:26379") for s in env.split(",") if s.strip()]
        return Target(sentinels, f"${SENTINELS_ENV}")
    if stack := running_stack("ha"):
        return Target(stack.endpoints("sentinel"), f"local stack {stack.state_dir}", stack)
    return Target(list(DEFAULT_SENTINELS), "defaults (the compose ports)")


def server_info(ha: HAClient, address: Address) -> dict:
    node = ha.node(address)
    try:
        return node.info("server")
    finally:
        node.close()


def prepare_run(test: TestDescription, ha: HAClient, target: Target, session: Session, out: Output) -> HARun:
    """Reach the master, build the fault, check ownership: a SetupError here has written nothing."""
    reachable = ha.check_reachable()
    announced = ha.announced_master()
    server = server_info(ha, reachable)
    history = History()
    fault, plan = build_fault(test, ha, announced, reachable, manual_kill_view(ha, history), out.notify)
    session.owned = require_ownership(test, ha, fault, reachable)  # refuses before any write
    session.allow_destructive = test.allow_destructive
    config = config_for_run(test, ha, reachable, fault) if fault is not None else []
    session.fault, session.original_master = fault, announced
    if fault is not None:
        test.facts = fault.facts()
        if fault.pins_old_primary:
            test.workload.insert(1, PINNED_LOOP)
    test.checks = [*CHECKS, *(["client_comparison"] if test.clients else []), "consistency", "replica_sync",
                   *(["roles_restored"] if fault is not None and fault.puts_back_roles("sentinel", session.roles_ours)
                     else [])]
    return HARun(test, ha, target, session, history, announced, reachable, server, plan, config)
