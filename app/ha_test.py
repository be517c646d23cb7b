"""Sentinel HA check: find the master through the sentinels, fail it over, measure what a client sees.

    python app/ha_test.py                      # the local stack (python app/stack.py up ha), else compose ports
    python app/ha_test.py --fault manual       # you run: docker kill valkey-master
    python app/ha_test.py --sentinel sentinel.example:26379 --master-name mymaster --fault graceful --json out.json

Checks: crud, master_kill, new_master, reconnect, consistency, replica_sync (and roles_restored after
--fault graceful on servers the harness did not start).
Faults and failovers run only on servers the harness started (lib/launcher/ownership.py), unless
--allow-destructive; then the harness puts the original master back afterwards.
Exit code: 0 all passed (WARN allowed), 1 a check failed, 2 setup error (one line on stderr), 3 the harness could
not judge a check (ERROR: e.g. its read-back of the writes never got an answer),
130 interrupted (Ctrl-C or SIGTERM: the killed master is started again and the keys deleted first).
"""

from __future__ import annotations

from lib.report.report import ConsoleOutput, cli_main
from lib.suites.ha import HASuite
from lib.suites.skeleton import run_cli


def main(argv: list[str] | None = None) -> int:
    return run_cli(HASuite(argv), argv, ConsoleOutput())


if __name__ == "__main__":
    cli_main(main)
