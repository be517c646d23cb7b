"""Cluster check: topology, slot placement, MOVED, ASK during a live migration, key spread, shard failover.

    python app/cluster_test.py                       # the local stack (python app/stack.py up cluster), else :7000
    python app/cluster_test.py --fault manual        # you run e.g.: docker kill node-7000 (any primary)
    python app/cluster_test.py --node redis.example:6379 --fault graceful --allow-destructive --json out.json

Checks: connect, placement, moved, ask, distribution, primary_failure, rejoin.
Exit code: 0 all passed (WARN allowed), 1 a check failed, 2 setup error (one line on stderr), 3 the harness
could not judge a check (ERROR: e.g. its read-back of the writes never got an answer).
Reads the topology it is given: no assumption about ports or the number of shards.

moved and ask migrate a slot, and the faults kill or fail over a primary: on servers the harness did
not start (a local stack, this repo's compose containers) only with --allow-destructive. Slots are
always put back; a graceful failover (and, with --allow-destructive, a kill) is undone afterwards.
"""

from __future__ import annotations

from lib.report.report import ConsoleOutput, cli_main
from lib.suites.cluster import ClusterSuite
from lib.suites.skeleton import run_cli


def main(argv: list[str] | None = None) -> int:
    return run_cli(ClusterSuite(argv), argv, ConsoleOutput())


if __name__ == "__main__":
    cli_main(main)
