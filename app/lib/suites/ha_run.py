"""One prepared HA run: its phases in order (CRUD, the measured failover and its final read, the fault healed and
the rejoin watched, the roles put back), each recorded in the run's one history; then every check judges that
history (lib/checks/ha_checks.judge), and the report shows it. What it hands the skeleton to undo is beside it."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import redis

from lib.checks.ha_checks import judge
from lib.checks.ha_master_kill import failover_timeline
from lib.checks.result import SuiteReport
from lib.clients.server_config import ConfigChange
from lib.description import TestDescription
from lib.errors import HarnessError
from lib.faults.fault import record_evidence
from lib.ha_client import Address, HAClient
from lib.history import HARNESS, History
from lib.phases import ha_phases
from lib.phases.final_read import read_back
from lib.phases.ha_failover import measure_failover, wait_replicas_synced
from lib.phases.ha_record import FINAL_READ_ON, TARGET, FailoverView, RunPlan
from lib.report.client_report import client_table
from lib.report.plot import plot_timeline
from lib.report.report import key_value_table
from lib.report.timeline_table import timeline_table
from lib.suites.compared import ha_comparison
from lib.suites.ha_session import Session, Target, cleanup, put_config_back
from lib.suites.ha_undo import undo_interrupted
from lib.suites.skeleton import Output
from lib.util import format_endpoint

HEAL_TIMEOUT_S = 30.0  # a stopped node the harness starts again (a person gets --manual-timeout)


@dataclass
class HARun:
    """One prepared HA run (lib/suites/skeleton.SuiteRun)."""

    test: TestDescription
    ha: HAClient
    target: Target
    session: Session
    history: History  # the run's one history (shared with a manual kill's live view)
    announced: Address  # the master as the sentinels announced it
    reachable: Address  # where it answers from here
    server: dict  # its INFO server
    plan: RunPlan = field(default_factory=RunPlan)  # what the run does around the fault
    config: list[ConfigChange] = field(default_factory=list)  # applied just before the fault (session.config)

    def checks(self, out: Output) -> SuiteReport:
        test, ha, session, fault = self.test, self.ha, self.session, self.session.fault
        version = self.server.get("valkey_version") or self.server.get("redis_version")
        out.show(self._target_table(version))
        self.history.observe(HARNESS, TARGET, {"master": format_endpoint(*self.announced),
                                               "reachable": format_endpoint(*self.reachable),
                                               "server_version": version})
        session.wrote = True  # from here on, keys under the namespace may exist
        ha_phases.crud(ha, session.namespace, self.history)
        run = self._failover(out)
        if run is None:  # the sentinels' view and the master's role, without a failover
            ha_phases.after_run(ha, self.history)
        if run is not None and fault is not None:
            heal_timeout = test.manual_timeout_s if fault.by_hand or fault.healed_by_person else HEAL_TIMEOUT_S
            ha_phases.rejoin(ha, FailoverView.from_history(self.history, test.facts, test.config), fault, heal_timeout,
                             owned=session.owned)
        else:
            ha_phases.replicas_caught_up(ha, self.history)
        if problems := put_config_back(session):
            out.warn("; ".join(problems))
        if "roles_restored" in test.checks and run is not None:
            session.roles_put_back = ha_phases.put_back_roles(ha, session.original_master, self.history)
        elif run is not None and (note := roles_note(ha, None if session.roles_put_back else session.original_master,
                                                     session.owned)):
            out.show(note)
        # Judged as saved: the checks read the history the JSON holds (times from the fault), so --recheck of the
        # file recomputes exactly these verdicts.
        saved = self.history.to_dict(run.fault_at if run is not None else 0.0)
        report = SuiteReport("ha", {"sentinels": [format_endpoint(*s) for s in self.target.sentinels],
                                    "master_name": ha.master_name, "master": format_endpoint(*self.announced),
                                    "server_version": version, "fault": test.fault, "harness_started": session.owned},
                             judge(test, History.from_dict(saved)), test.to_dict(), saved)
        comparison = next((r for r in report.checks if r.name == "client_comparison"), None)
        if comparison is not None and comparison.metrics.get("clients"):
            out.show(client_table(comparison.metrics, "Clients during the fault (HA)"))
        return report

    def _target_table(self, version: str | None) -> Any:
        reached = (f" (reached at {format_endpoint(*self.reachable)})" if self.reachable != self.announced else "")
        return key_value_table("Target", [
            ("sentinels", ", ".join(format_endpoint(*s) for s in self.target.sentinels)
             + f"  (from {self.target.source})"),
            ("master name", self.ha.master_name),
            ("master", format_endpoint(*self.announced) + reached),
            ("server", f"{self.server.get('server_name', 'redis')} {version}"),
        ])

    def _failover(self, out: Output) -> FailoverView | None:
        """The measured failover, its timeline shown (and plotted); None when --fault none."""
        test, fault = self.test, self.session.fault
        if fault is None:
            if test.plot:
                out.warn(f"--plot: no failover ran (--fault {test.fault}), nothing to plot")
            return None
        replicas = wait_replicas_synced(self.ha, timeout=60)
        out.show(f"{len(replicas)} replica(s) in sync; starting the writer, the 5 ms probe and the "
                 f"sentinel event recorder")
        self._apply_config(out)
        compared = ha_comparison(test, self.ha, self.target, self.reachable, self.session.namespace, self.history)
        if compared is not None:
            out.show(f"comparing clients side by side: {', '.join(test.clients)}")
        live = measure_failover(test, self.ha, fault, self.session.namespace, self.history, progress=out.show,
                            plan=self.plan, compared=compared)
        record_evidence(fault, self.history, live.new_master)
        ha_phases.after_run(self.ha, self.history)
        if live.recovered_at is not None:
            self._final_read()
        run = FailoverView.from_history(self.history, test.facts, test.config)  # what the checks will judge
        timeline = failover_timeline(run)
        out.show(timeline_table(timeline))
        if test.plot:
            written = plot_timeline(timeline, test.plot, f"HA failover: {run.fault}")
            out.show(f"timeline plot written to {written}")
        return run

    def _final_read(self) -> None:
        """Read back every key any writer wrote, on the master the sentinels agree on: the consistency verdict (and
        --recheck) judges by this read alone."""
        address = self.ha.master_address()
        # HarnessError: no answer within the read's deadline; kept in the history, consistency says ERROR
        with contextlib.closing(self.ha.node(address)) as master, contextlib.suppress(HarnessError):
            read_back(master.mget, None, self.history, where=f"on {format_endpoint(*address)}")
        self.history.observe(HARNESS, FINAL_READ_ON, format_endpoint(*address))

    def _apply_config(self, out: Output) -> None:
        """CONFIG SET for the run (recorded in the session first, so that however the run ends it is put back)."""
        for change in self.config:
            self.session.config.append(change)
            change.apply()
            self.test.config.update(change.settings)
            out.show(f"CONFIG SET {' '.join(f'{k} {v}' for k, v in change.settings.items())} on "
                     f"{', '.join(format_endpoint(*n) for n in change.nodes)} for this run (put back afterwards)")

    def undo_interrupted(self) -> list[str]:
        return undo_interrupted(self.ha, self.session)

    def cleanup(self) -> str | None:
        problems = put_config_back(self.session)
        if self.session.wrote and (problem := cleanup(self.ha, self.session.namespace)):
            problems.append(problem)
        return "; ".join(problems) or None


def roles_note(ha: HAClient, original: Address | None, owned: bool) -> str | None:
    """One line on the roles a failover left swapped (original: the master before it), or None if unchanged."""
    if original is None:
        return None
    try:
        now = ha.announced_master()
    except redis.RedisError as exc:
        return f"roles: could not ask the sentinels who is master now ({type(exc).__name__})"
    if now == original:
        return None
    swapped = f"roles left swapped: {format_endpoint(*now)} is the master now, {format_endpoint(*original)} a replica"
    if owned:
        return f"{swapped} (the harness's own stack, so they are not put back)"
    return (f"{swapped} (the fault was done by hand; to put them back: SENTINEL FAILOVER once "
            f"{format_endpoint(*original)} replicates with its link up)")
