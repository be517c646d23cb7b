"""Cache check: an HTTP-response cache store on a real cluster, why client-side sharding fails, and failover.

    python app/cache_test.py                       # the local stack (python app/stack.py up cluster), else :7000
    python app/cache_test.py --fault local --json out.json
    python app/cache_test.py --node redis.example:6379 --fault manual

The faults kill or fail over a primary: on servers the harness did not start only with
--allow-destructive; a graceful failover (and, with --allow-destructive, a kill) is undone afterwards.

Checks: store_basics, store_ttl, store_spread, store_clear, ring_vs_cluster, http_failover, rejoin.
Exit code: 0 all passed (WARN allowed), 1 a check failed, 2 setup error (one line on stderr), 3 the harness
could not judge a check (ERROR: e.g. its read-back of the writes never got an answer).
"""

from __future__ import annotations

from lib.report.report import ConsoleOutput, cli_main
from lib.suites.cache import CacheSuite
from lib.suites.skeleton import run_cli


def main(argv: list[str] | None = None) -> int:
    return run_cli(CacheSuite(argv), argv, ConsoleOutput())


if __name__ == "__main__":
    cli_main(main)
