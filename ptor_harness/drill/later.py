"""`ptor reconcile --run RUN_ID`: finish a run that did not finish, later.

A coordinator killed mid-drill (SIGKILL, a lost host), or a repo that stayed away past
--max-outage, leaves a ledger without a verdict. The faults come back from the journal
(each journaled as it started and as it ended), so the report says what was injected.
This reconciles that ledger against the primary exactly as the drill would have, and ends
the same way (report, ledger verdict, every export): a `Drill` whose load already ran.

A run that had finished may be checked again while its rows stand (a second opinion: after
a split brain, against the node that won). Its own report is the drill's record and stays
as it was, in its folder and in the ledger: the second check's files go to a folder of
their own inside the run's (`recheck-<UTC time>`), and to the exports this invocation
names.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Optional

import psycopg2

from .. import db
from ..config import Scenario
from ..config.scenario import JUDGED_BY
from ..errors import ClusterError
from ..ledger import spill
from ..ledger.journal import journal_spill_path, spilled_events
from ..outcome import RECHECKED_SAYS, RECONCILED_LATER_SAYS, Stop
from ..outputs import exports
from ..schema import run_key, tables_owner
from ..verify.validation import mid_check
from .coordinator import Drill, make_run_dir
from .faults import records_from_journal
from .probe import gaps_from_journal

log = logging.getLogger("ptor")


class LateReconciliation(Drill):
    """The run's own shape (workers, schema, payload size) comes from the ledger; the DSNs
    from this invocation, since the ledger keeps them with passwords masked."""

    started_at: Optional[float] = None  # the run's start as its ledger keeps it

    def __init__(self, scenario: Scenario, run_id: str,
                 given: frozenset[str] = frozenset()) -> None:
        super().__init__(scenario, run_id=run_id)
        self.given = given  # the options this invocation set (parse.given_options)

    def run(self) -> dict:
        path = self.ledger_spec.sqlite_path
        if path and not os.path.exists(path):
            raise ClusterError(f"no embedded ledger for run {self.run_id} at {path}; give "
                               "the --report-dir it ran with, or --repo-pgdsn if it used one")
        finished = None
        try:
            self.locks.take()
            with self.open_ledger():
                stored = self.ledger.stored_scenario()
                if stored is None:
                    raise ClusterError(f"the ledger has no run {self.run_id}")
                self.started_at = self.ledger.run_started_at()
                s = self.scenario
                self.scenario = self.outcome.scenario = s.replace(
                    parallel_workers=stored["parallel_workers"], schema=stored["schema"],
                    payload_bytes=stored["payload_bytes"],
                    ops_per_transaction=stored.get("ops_per_transaction", 1),
                    background_load=(),  # what it did went with the coordinator
                    full_data_validation=s.preparation.full_data_validation
                    or stored["full_data_validation"], **self.run_judged_by(stored))
                events = self.journaled_events()
                for at, name, detail in events:
                    if name.startswith("phase:"):
                        self.outcome.phases[name[len("phase:"):]] = at
                    if name == "phase:warmup":
                        self.outcome.faults_planned = detail.get("faults_planned", 0)
                self.outcome.faults = records_from_journal(events)
                self.outcome.probe_gaps = gaps_from_journal(events)
                finished = self.finished_by_itself()
                if finished is None:
                    self.outcome.stopped(Stop.RECONCILED_LATER,
                                         f"{RECONCILED_LATER_SAYS}: the run did not finish")
                else:
                    self.outcome.stopped(Stop.RECHECKED, recheck_sentence(*finished))
                self.replay_spill_file()
                result = self.conclude(record=finished is None)
        finally:
            self.locks.release()
        files = self.run_dir
        if finished is not None:
            files = os.path.join(self.run_dir, "recheck-" + time.strftime(
                "%Y%m%dT%H%M%SZ", time.gmtime(self.outcome.phases.get("reconcile"))))
            make_run_dir(files)
        self.output_failures = exports.write_outputs(result, files, self.scenario.outputs)
        return result

    def run_judged_by(self, stored: dict) -> dict:
        """The run's own thresholds and expectation, except those given again (a run
        recorded before a setting existed keeps this invocation's)."""
        now = self.scenario.values()
        for name in sorted(set(JUDGED_BY) & self.given):
            if name in stored and stored[name] != now[name]:
                log.info("judged by --%s %s as given now; the run had %s",
                         name.replace("_", "-"), now[name], stored[name])
        return {name: stored[name] for name in JUDGED_BY
                if name not in self.given and name in stored}

    def finished_by_itself(self) -> Optional[tuple[float, str]]:
        """(finished_at, verdict) when the drill itself ended with a verdict (not a
        `ptor reconcile` of it that had not finished), else None."""
        ending = self.ledger.run_ending()
        if ending is None or ending[2].startswith(RECONCILED_LATER_SAYS):
            return None
        return ending[0], ending[1]

    def check_rows_are_this_runs(self, conn) -> None:
        """Every drill empties ptor's tables as it starts: where one did after this run
        began, the rows are that drill's, and reconciling this run's ledger against them
        would count its writes lost (or kept) by chance. A server that never saw this run
        start (a standby down since before it, then promoted) holds an earlier run's
        mark: there the loss is real, and the check goes on."""
        try:
            owner = tables_owner(conn, self.scenario.connection.schema)
        except psycopg2.Error as exc:
            raise mid_check(exc, conn) from None
        if owner is None or owner[0] == run_key(self.run_id):
            return
        if self.started_at is None or owner[1] >= self.started_at:
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(owner[1]))
            raise ClusterError(
                f"a later drill emptied ptor's tables on the primary at {when}, after run "
                f"{self.run_id} began: its rows are gone, so it can no longer be reconciled")

    def journaled_events(self) -> list:
        """The run's journal: the ledger's events, and those the repo refused, from the
        run folder's journal spill file (the repo gone mid-drill), in time order."""
        events = self.ledger.events()
        held = {(at, name) for at, name, _ in events}
        spilled = [e for e in spilled_events(journal_spill_path(self.run_dir))
                   if (e[0], e[1]) not in held]
        if spilled:
            log.info("%d journal events from %s", len(spilled),
                     journal_spill_path(self.run_dir))
        return sorted(events + spilled, key=lambda e: e[0])

    def replay_spill_file(self) -> None:
        """A spill file left by a recorder that gave up on the repo goes into the ledger
        first (rows already there are skipped), so reconciliation sees every op."""
        path = self.ledger_spec.spill_path
        if not path or not os.path.exists(path):
            return
        try:
            rows = spill.replay(self.ledger, path)
        except psycopg2.Error as exc:
            raise ClusterError(f"cannot replay the spill file {path} into the repo: "
                               f"{db.error_label(exc)}") from None
        except ValueError as exc:  # not a file the recorder wrote, or damaged
            raise ClusterError(f"cannot replay the spill file: {exc}") from None
        os.unlink(path)
        log.info("replayed %d ledger rows from the spill file %s", rows, path)
        self.outcome.stop = self.outcome.stop.noting(
            f"{rows} ledger rows replayed from its spill file")


def recheck_sentence(finished_at: float, verdict: str) -> str:
    """The stop reason of a second check: when the run had finished, and how."""
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(finished_at))
    return (f"{RECHECKED_SAYS}: the run had finished at {when} with verdict "
            f"{verdict.upper()}, which its own report keeps; this is a later check of its "
            "ledger against the primary now")
