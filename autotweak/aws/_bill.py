"""One launcher's bill: its instances' cost kept on the study at each poll, and what killed launchers left.

The launcher asks it for its instances at each poll (:meth:`LauncherBill.poll`): they are
billed, the study's cost so far and this launcher's record are written (see
:mod:`~autotweak.aws._leftovers`), and the instances of the study's killed launchers are
charged, once. At its start and close the bill also deletes the launch templates killed
launchers left (at its close, its own too).

The study's cost is what older sessions cost plus every launcher's record: two launchers on
one study at once each add their own, neither overwrites the other's. Between polls a
heartbeat thread rewrites the record's time while the launcher lives, so a launcher held in
one long AWS call is never taken for killed (its template deleted, its instances billed by
another session).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import optuna

from autotweak.aws._cost import Ledger, StudyCost, log_costs, record_cost, recorded_cost
from autotweak.aws._ec2 import Instance, find_instances
from autotweak.aws._leftovers import LauncherRecord, Leftovers, clean_templates, write_record
from autotweak.engine._session import WorkerContext

__all__ = ["LauncherBill"]

_log = logging.getLogger(__name__)


class LauncherBill:
    """What a launcher's instances cost, and what the study's killed launchers left unbilled.

    Attributes:
        ledger: This launcher's instances.
        earlier: What the rest of the study cost: its sessions without a launcher record, and the
            records of its other launchers (running beside this one, ended, or gone and billed).
        leftovers: What it charged for those, and which launchers it found closed.
    """

    def __init__(self, ec2: Any, study: optuna.Study, launcher: str, poll_interval: float) -> None:
        self.ec2 = ec2
        self.study = study
        self.launcher = launcher
        self.name = study.study_name
        self.poll_interval = poll_interval
        self.ledger = Ledger()
        # budget_usd is the study's: over all its sessions, and the launchers running beside this one
        self.earlier = recorded_cost(study, launcher)
        self.leftovers = Leftovers(launcher)
        self._record: LauncherRecord | None = None  # as last written; the heartbeat refreshes its time
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def total(self, now: float) -> float:
        """The study's cost until ``now``, over all its sessions."""
        return self.earlier + self.ledger.spent(now)

    def poll(self, now: float) -> list[Instance]:
        """Bill the instances of this launcher (returned), and of killed ones; keep the bill on the study."""
        everyone = find_instances(self.ec2, self.name)
        mine = [i for i in everyone if i.launcher == self.launcher]
        self.ledger.update(mine, now)
        self._charge(everyone, now)
        self.keep(now)
        return mine

    def keep(self, now: float, *, closed: bool = False) -> None:
        """Write this launcher's record, then the study's cost so far.

        The record goes first: a launcher killed between the two writes leaves a study short
        of its last poll's bill, never billed twice for it.
        """
        record = LauncherRecord(self.ledger.spent(now), now, self.poll_interval, open=not closed)
        if closed:
            self._stop_heartbeat()
        with self._lock:
            self._record = record
            try:
                write_record(self.study, self.launcher, record)
            except Exception as exc:  # the next poll writes it again
                _log.debug("could not write the launcher's record: %s", exc)
        if not closed and self._heartbeat is None:
            self._heartbeat = threading.Thread(target=self._beat, name="autotweak-record", daemon=True)
            self._heartbeat.start()
        self._refresh()
        record_cost(self.study, self.earlier, self.ledger, now)

    def _refresh(self) -> None:
        """Read what the rest of the study cost: other launchers running write theirs meanwhile."""
        try:
            self.earlier = recorded_cost(self.study, self.launcher)
        except Exception as exc:  # the storage out of reach: the last read stands
            _log.debug("could not read the study's cost: %s", exc)

    def _beat(self) -> None:
        """Rewrite the record's time each poll interval while the launcher lives (also inside an AWS call)."""
        while not self._stop.wait(self.poll_interval):
            with self._lock:
                if self._record is None or not self._record.open:
                    return
                self._record = LauncherRecord(self._record.usd, time.time(), self.poll_interval)
                try:
                    write_record(self.study, self.launcher, self._record)
                except Exception as exc:  # the next beat, or poll, writes it again
                    _log.debug("could not refresh the launcher's record: %s", exc)

    def _stop_heartbeat(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()

    def settle(self, now: float, *, closing: bool = False) -> None:
        """Charge what killed launchers of the study left unbilled; delete the templates they left.

        Closing, this launcher's own templates go too: a Ctrl-C between a template's creation
        and the fleet call never learned the template's id.
        """
        try:
            # Written at once: this session may be killed too.
            if self._charge(find_instances(self.ec2, self.name), now):
                record_cost(self.study, self.earlier, self.ledger, now)
        except Exception as exc:  # botocore's ClientError: EC2 out of reach, or a refusal
            _log.warning(
                "could not look for instances killed launchers of study '%s' left: %s", self.name, exc
            )
        try:
            clean_templates(self.ec2, self.study, self.launcher, now, mine=closing)
        except Exception as exc:  # templates cost nothing: a later session deletes them
            _log.warning(
                "could not look for launch templates killed launchers of study '%s' left (it needs "
                "ec2:DescribeLaunchTemplates): %s",
                self.name,
                exc,
            )

    def _charge(self, instances: list[Instance], now: float) -> float:
        """Charge the study for the instances of its gone launchers (a storage error: at the next poll).

        The charge goes into the gone launcher's record, which the study's cost sums: two
        sessions that bill the same launcher write the same record, and count it once.
        """
        try:
            charged = self.leftovers.settle(self.study, instances, self.ledger.bound, now)
        except Exception as exc:  # the storage out of reach: the launcher's record stays open
            _log.debug("could not bill the instances of killed launchers: %s", exc)
            return 0.0
        if charged:
            self._refresh()
        return charged

    def close(self, ctx: WorkerContext, now: float) -> StudyCost:
        """Bill every instance of this launcher until ``now`` (they are terminated), close the record, log."""
        try:
            mine = find_instances(self.ec2, self.name, self.launcher)
            self.ledger.update(mine, now)  # also those a launch cut short never named
        except Exception as exc:  # the ledger bills those it saw
            _log.warning("could not list this launcher's instances to bill them: %s", exc)
        self.ledger.close(now)
        self.keep(now, closed=True)
        self.settle(now, closing=True)
        self._refresh()  # launchers that ran beside this one wrote theirs meanwhile
        return log_costs(ctx, self.study, self.ledger, self.earlier, self.leftovers.settled)

    def cost(self) -> StudyCost:
        """The study's cost as it stands (no instance launched by this session)."""
        settled = self.leftovers.settled
        return StudyCost(0.0, self.earlier, tuple(settled.bounds), settled.words())
