"""Every check of the cluster suite, judged from the test description and the history alone: what the suite runs
after its phases, and what --recheck runs on a saved file."""

from __future__ import annotations

from lib.checks.client_rows import check_client_comparison
from lib.checks.cluster_failover_checks import check_primary_failure
from lib.checks.cluster_placement import check_connect, check_distribution, check_placement
from lib.checks.cluster_redirects import check_ask, check_moved
from lib.checks.cluster_rejoin import check_rejoin
from lib.checks.result import FAIL, ScenarioResult, run_scenario
from lib.description import TestDescription
from lib.history import HARNESS, History
from lib.runs.client_comparison import ComparedView
from lib.runs.cluster_failover_run import BROKEN, ClusterFailoverRun


def failover_of(test: TestDescription, history: History) -> tuple[ClusterFailoverRun | None, ScenarioResult | None]:
    """The failover as recorded, or (when the phase broke) the FAIL saying why; (None, None) without a fault."""
    if test.facts is None:
        return None, None
    if (broken := history.observed(HARNESS, BROKEN)) is not None:
        return None, ScenarioResult("primary_failure", FAIL, f"the failover run stopped: {broken.error}",
                                    {"fault": test.facts.get("description")})
    return ClusterFailoverRun.from_history(history, test.facts), None


def judge(test: TestDescription, history: History) -> list[ScenarioResult]:
    run, failed = failover_of(test, history)
    skipped = f"--fault {test.fault}" if test.facts is None else None
    results = [run_scenario("connect", lambda: check_connect(history)),
               run_scenario("placement", lambda: check_placement(history)),
               run_scenario("moved", lambda: check_moved(history)),
               run_scenario("ask", lambda: check_ask(history)),
               run_scenario("distribution", lambda: check_distribution(history)),
               failed or run_scenario("primary_failure", lambda: check_primary_failure(run, skipped))]
    if test.clients:
        compared = ComparedView.from_history(history) if run is not None else None
        results.append(run_scenario("client_comparison", lambda: check_client_comparison(
            compared, run.fault_at if run else 0.0, run.promoted_at if run else None,
            run.victim.label if run and run.victim else None, skipped or (None if run else "the failover failed"))))
    results.append(run_scenario("rejoin", lambda: check_rejoin(history, run)))
    return results
