"""One prepared HA run: the checks in order, the failover measured and shown, the fault put back before
replica_sync judges the rejoin, and what it hands the skeleton to undo (lib/suites/skeleton.SuiteRun)."""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass, field
from typing import Any

from lib import events
from lib.checks.client_rows import check_client_comparison
from lib.checks.ha_checks import check_crud, check_new_master, check_reconnect
from lib.checks.ha_consistency import check_consistency
from lib.checks.ha_master_kill import check_master_kill, failover_timeline
from lib.checks.ha_rejoin import roles_note
from lib.checks.result import SuiteReport, run_scenario
from lib.clients.server_config import ConfigChange
from lib.errors import HarnessError
from lib.ha_client import Address, HAClient
from lib.history import History
from lib.report.client_report import client_table
from lib.report.plot import plot_timeline
from lib.report.report import key_value_table
from lib.report.timeline import timeline_table
from lib.runs.client_comparison import ClientComparison
from lib.runs.final_read import read_back
from lib.runs.ha_failover import run_failover, wait_replicas_synced
from lib.runs.ha_record import FailoverRun, RunPlan
from lib.suites.compared import ha_comparison
from lib.suites.ha_restore import replica_sync_scenario, roles_restored_scenario
from lib.suites.ha_session import Session, Target, cleanup, put_config_back
from lib.suites.ha_undo import undo_interrupted
from lib.suites.skeleton import Output
from lib.util import format_endpoint


@dataclass
class HARun:
    """One prepared HA run (lib/suites/skeleton.SuiteRun)."""

    args: argparse.Namespace
    ha: HAClient
    target: Target
    session: Session
    history: History  # the writer's, shared with a manual kill's live view
    announced: Address  # the master as the sentinels announced it
    reachable: Address  # where it answers from here
    server: dict  # its INFO server
    plan: RunPlan = field(default_factory=RunPlan)  # what the run does around the fault
    config: list[ConfigChange] = field(default_factory=list)  # applied just before the fault (session.config)

    def checks(self, out: Output) -> SuiteReport:
        args, ha, session, fault = self.args, self.ha, self.session, self.session.fault
        version = self.server.get("valkey_version") or self.server.get("redis_version")
        out.show(self._target_table(version))
        report = SuiteReport("ha", {"sentinels": [format_endpoint(*s) for s in self.target.sentinels],
                                    "master_name": args.master_name, "master": format_endpoint(*self.announced),
                                    "server_version": version, "fault": args.fault, "harness_started": session.owned})
        session.wrote = True  # from here on, keys under the namespace may exist
        report.add(run_scenario("crud", lambda: check_crud(ha, session.namespace)))
        run, skipped = self._failover(out)
        report.add(run_scenario("master_kill", lambda: check_master_kill(run, skipped)))
        report.add(run_scenario("new_master", lambda: check_new_master(ha, run)))
        report.add(run_scenario("reconnect", lambda: check_reconnect(run, skipped, ha.switches_followed)))
        if args.client:
            compared = run.compared if run is not None else None
            switch = run.history.first_event(events.SWITCH_MASTER) if run is not None else None
            result = run_scenario("client_comparison", lambda: check_client_comparison(
                compared, run.fault_at if run else 0.0, switch.at if switch else None, "master", skipped))
            report.add(result)
            if result.metrics.get("clients"):
                out.show(client_table(result.metrics, "Clients during the fault (HA)"))
        report.add(run_scenario("consistency", lambda: check_consistency(ha, run, skipped)))
        heal_timeout = args.manual_timeout if fault and (fault.by_hand or fault.healed_by_person) else 30
        report.add(run_scenario("replica_sync", lambda: replica_sync_scenario(ha, run, fault, heal_timeout,
                                                                              owned=session.owned)))
        if problems := put_config_back(session):
            out.warn("; ".join(problems))
        if run is not None and fault is not None and fault.puts_back_roles("sentinel", session.roles_ours):
            report.add(run_scenario("roles_restored", lambda: roles_restored_scenario(ha, session)))
        elif run is not None and (note := roles_note(ha, None if session.roles_put_back else session.original_master,
                                                     session.owned)):
            out.show(note)
        return report

    def _target_table(self, version: str | None) -> Any:
        reached = (f" (reached at {format_endpoint(*self.reachable)})" if self.reachable != self.announced else "")
        return key_value_table("Target", [
            ("sentinels", ", ".join(format_endpoint(*s) for s in self.target.sentinels)
             + f"  (from {self.target.source})"),
            ("master name", self.args.master_name),
            ("master", format_endpoint(*self.announced) + reached),
            ("server", f"{self.server.get('server_name', 'redis')} {version}"),
        ])

    def _failover(self, out: Output) -> tuple[FailoverRun | None, str | None]:
        """The measured failover, its timeline shown (and plotted); (None, why) when --fault none."""
        args, fault = self.args, self.session.fault
        if fault is None:
            if args.plot:
                out.warn("--plot: no failover ran (--fault none), nothing to plot")
            return None, "--fault none"
        replicas = wait_replicas_synced(self.ha, timeout=60)
        out.show(f"{len(replicas)} replica(s) in sync; starting the writer, the 5 ms probe and the "
                 f"sentinel event recorder")
        settings = self._apply_config(out)
        compared = ha_comparison(args, self.ha, self.target, self.reachable, self.session.namespace)
        if compared is not None:
            out.show(f"comparing clients side by side: {', '.join(args.client)}")
        run = run_failover(self.ha, fault, self.session.namespace, recovery_timeout=args.recovery_timeout,
                           history=self.history, progress=out.show, plan=self.plan, settings=settings,
                           compared=compared)
        run.extra.update(fault.evidence(run.new_master))
        if explained := fault.explain_loss(run.extra):
            run.loss_explained = explained
        if run.recovered_at is not None:
            self._final_read(run)
        timeline = failover_timeline(run)
        out.show(timeline_table(timeline))
        if args.plot:
            written = plot_timeline(timeline, args.plot, f"HA failover: {run.fault}")
            out.show(f"timeline plot written to {written}")
        return run, None

    def _final_read(self, run: FailoverRun) -> None:
        """Read back every key the writers wrote, on the master the sentinels agree on, into their histories:
        the consistency verdict (and --recheck) judges by this read alone."""
        address = self.ha.master_address()
        master = self.ha.node(address)
        try:
            where = f"on {format_endpoint(*address)}"
            compared = run.compared.clients if isinstance(run.compared, ClientComparison) else []
            for history in (run.history, run.pinned, *(c.history for c in compared)):
                if history is not None:
                    with contextlib.suppress(HarnessError):  # kept in the history: consistency says ERROR
                        read_back(master.mget, None, history, where=where)
        finally:
            master.close()
        run.extra["final_read_on"] = format_endpoint(*address)

    def _apply_config(self, out: Output) -> dict[str, str]:
        """CONFIG SET for the run (recorded in the session first, so that however the run ends it is put back)."""
        settings: dict[str, str] = {}
        for change in self.config:
            self.session.config.append(change)
            change.apply()
            settings.update(change.settings)
            out.show(f"CONFIG SET {' '.join(f'{k} {v}' for k, v in change.settings.items())} on "
                     f"{', '.join(format_endpoint(*n) for n in change.nodes)} for this run (put back afterwards)")
        return settings

    def undo_interrupted(self) -> list[str]:
        return undo_interrupted(self.ha, self.session)

    def cleanup(self) -> str | None:
        problems = put_config_back(self.session)
        if self.session.wrote and (problem := cleanup(self.ha, self.session.namespace)):
            problems.append(problem)
        return "; ".join(problems) or None
