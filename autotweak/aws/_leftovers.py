"""What a killed launcher leaves behind: instances it never billed, and launch templates.

Each launcher keeps a record on the study (user attr ``autotweak.launcher.<id>``): what its
instances cost so far, when it last wrote, its poll interval, and whether its bill is
closed. A launcher killed outright (SIGKILL, its machine lost) leaves the record open: the
study holds its last poll's cost, not the instances launched since (inside a launch call
it never saw them) nor their time since. Its watchdog terminates them, but bills nothing.

A later session of the study (at its start, at each poll, at its close) takes a launcher
for gone when its record is open, was not written for three of its polls and 10 s, and none
of its instances runs. It bills that launcher's instances from what EC2 says (launch until
termination, a minute at least, the price tag or else a :class:`PriceBound`), charges the
study the part the record lacks, and closes the record: a session that finds it closed
charges nothing, so the instances are billed once. It also deletes the launch templates a
gone launcher left (one killed between the template and the fleet call).

EC2 lists a terminated instance for about an hour: a launcher killed longer before the next
session is billed as its record says (its last poll).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna

from autotweak._money import usd
from autotweak._trial_costs import ESTIMATE_ATTR, RECORD_PREFIX, merged_estimate
from autotweak.aws._cost import Ledger, PriceBound, Settled
from autotweak.aws._ec2 import Instance, delete_templates, find_templates

__all__ = ["RECORD_PREFIX", "LauncherRecord", "Leftovers", "clean_templates", "write_record"]

_log = logging.getLogger(__name__)

_SILENT_POLLS = 3  # a live launcher writes its record at each poll: 3 missed, and 10 s more, it is gone
_SILENT_S = 10.0


@dataclass(frozen=True)
class LauncherRecord:
    """One launcher's bill on the study: dollars so far, when written, its poll interval, open or closed."""

    usd: float
    at: float
    every: float
    open: bool = True

    @classmethod
    def read(cls, value: Any) -> LauncherRecord | None:
        """The record from the study's attr; None where absent or unreadable."""
        try:
            return cls(float(value["usd"]), float(value["at"]), float(value["every"]), bool(value["open"]))
        except (TypeError, ValueError, KeyError):
            return None

    def gone(self, now: float) -> bool:
        """Whether its launcher ended without closing its bill: open, and silent for too long."""
        return self.open and now - self.at > _SILENT_POLLS * self.every + _SILENT_S


def write_record(study: optuna.Study, launcher: str, record: LauncherRecord) -> None:
    """Keep ``launcher``'s record on the study (its own key: launchers never write each other's at once)."""
    study.set_user_attr(RECORD_PREFIX + launcher, vars(record))


def _records(attrs: Mapping[str, Any]) -> dict[str, LauncherRecord | None]:
    return {
        k.removeprefix(RECORD_PREFIX): LauncherRecord.read(v)
        for k, v in attrs.items()
        if k.startswith(RECORD_PREFIX)
    }


@dataclass
class Leftovers:
    """Bills the instances of the study's gone launchers, once; says what this session charged.

    Attributes:
        me: This launcher's id (its own instances are its ledger's).
        settled: What this session charged for them.
    """

    me: str
    settled: Settled = field(default_factory=Settled)
    closed: set[str] = field(default_factory=set)  # launchers found closed: not read again

    def settle(
        self, study: optuna.Study, instances: Iterable[Instance], bound: PriceBound, now: float
    ) -> float:
        """Bill the instances of gone launchers among ``instances``; return the dollars charged now."""
        by_launcher: dict[str, list[Instance]] = {}
        for inst in instances:
            if inst.launcher not in (self.me, *self.closed):
                by_launcher.setdefault(inst.launcher, []).append(inst)
        ended = {k: v for k, v in by_launcher.items() if not any(i.alive for i in v)}
        if not ended:
            return 0.0
        records = _records(study.user_attrs)
        charged = 0.0
        for launcher, insts in ended.items():
            record = records.get(launcher)
            if record is None or not record.open:  # an older autotweak's launcher billed its own
                self.closed.add(launcher)
            elif record.gone(now):
                charged += self._bill(study, launcher, record, insts, bound, now)
        return charged

    def _bill(
        self,
        study: optuna.Study,
        launcher: str,
        record: LauncherRecord,
        instances: list[Instance],
        bound: PriceBound,
        now: float,
    ) -> float:
        ledger = Ledger(bound)
        ledger.update(instances, now)
        bill = ledger.spent(now)
        charge = max(0.0, bill - record.usd)
        write_record(
            study, launcher, LauncherRecord(max(bill, record.usd), record.at, record.every, open=False)
        )
        self.closed.add(launcher)
        estimated = ledger.estimated()
        if estimated:  # for the report, at once: this session may be killed too
            study.set_user_attr(
                ESTIMATE_ATTR, merged_estimate(study.user_attrs.get(ESTIMATE_ATTR), estimated)
            )
        self.settled.instances += len(instances)
        self.settled.usd += charge
        self.settled.bounds += estimated
        self.settled.prices += [e.price for e in ledger.entries.values()]
        _log.warning(
            "launcher %s ended without billing its %d instance(s) (killed, or its machine lost): "
            "charging study '%s' %s for them",
            launcher,
            len(instances),
            study.study_name,
            usd(charge),
        )
        return charge


def clean_templates(ec2: Any, study: optuna.Study, me: str, now: float, *, mine: bool = False) -> list[str]:
    """Delete the launch templates that gone launchers of the study left (this one's too where ``mine``)."""
    templates = [t for t in find_templates(ec2, study.study_name) if mine or t.launcher != me]
    if not templates:
        return []
    records = _records(study.user_attrs)

    def left(launcher: str) -> bool:
        record = records.get(launcher)
        return launcher == me or record is None or not record.open or record.gone(now)

    return delete_templates(ec2, [t for t in templates if left(t.launcher)])
