"""Every check of the cluster suite, judged from the test description and the history alone: what the suite runs
after its phases, and what --recheck runs on a saved file."""

from __future__ import annotations

from lib.checks.client_rows import check_client_comparison
from lib.checks.cluster_failover_checks import check_primary_failure
from lib.checks.cluster_placement import check_connect, check_distribution, check_placement
from lib.checks.cluster_redirects import check_ask, check_moved
from lib.checks.cluster_rejoin import check_rejoin
from lib.checks.result import FAIL, CheckResult, checked
from lib.description import TestDescription
from lib.history import HARNESS, History
from lib.phases.client_comparison import ComparedView
from lib.phases.cluster_record import BROKEN, ClusterFailoverView


def failover_of(test: TestDescription, history: History) -> tuple[ClusterFailoverView | None, CheckResult | None]:
    """The failover as recorded, or (when the phase broke) the FAIL saying why; (None, None) without a fault."""
    if test.facts is None:
        return None, None
    if (broken := history.observed(HARNESS, BROKEN)) is not None:
        return None, CheckResult("primary_failure", FAIL, f"the failover run stopped: {broken.error}",
                                    {"fault": test.facts.get("description")})
    return ClusterFailoverView.from_history(history, test.facts), None


def judge(test: TestDescription, history: History) -> list[CheckResult]:
    run, failed = failover_of(test, history)
    skipped = f"--fault {test.fault}" if test.facts is None else None
    results = [checked("connect", lambda: check_connect(history)),
               checked("placement", lambda: check_placement(history)),
               checked("moved", lambda: check_moved(history)),
               checked("ask", lambda: check_ask(history)),
               checked("distribution", lambda: check_distribution(history)),
               failed or checked("primary_failure", lambda: check_primary_failure(run, skipped))]
    if test.clients:
        compared = ComparedView.from_history(history) if run is not None else None
        results.append(checked("client_comparison", lambda: check_client_comparison(
            compared, run.fault_at if run else 0.0, run.promoted_at if run else None,
            run.victim.label if run and run.victim else None, skipped or (None if run else "the failover failed"))))
    results.append(checked("rejoin", lambda: check_rejoin(history, run)))
    return results
