"""What the study's instances cost: an instance ledger, per-trial and per-study costs in MLflow.

The bill is instance time: from launch until terminated, a minute at least (AWS bills a
Linux spot instance per second, 60 s at least), at the spot price the instance was
launched at (the ``autotweak:price`` tag). An instance whose tag was never written (a
launch cut short by Ctrl-C or an error) is charged at most what it can cost
(:class:`PriceBound`), and the cost says so. A trial's cost is its run time at the mean
hourly price of the study's instances; the study's cost also counts boot and idle time,
so it is the larger of the two.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import optuna

from autotweak._money import usd
from autotweak._trial_costs import (
    BASE_ATTR,
    COST_ATTR,
    ESTIMATE_ATTR,
    TRIAL_COSTS_ATTR,
    estimate_words,
    merged_estimate,
    spot_dollars,
)
from autotweak._trial_costs import COST_METRIC as METRIC
from autotweak.aws._ec2 import Instance
from autotweak.engine._session import WorkerContext
from autotweak.exceptions import TrackingError
from autotweak.tracking import check_tracking_server

__all__ = [
    "COST_ATTR",
    "MINIMUM_S",
    "Ledger",
    "PriceBound",
    "Settled",
    "StudyCost",
    "log_costs",
    "record_cost",
    "recorded_cost",
]

_log = logging.getLogger(__name__)


MINIMUM_S = 60.0  # AWS bills a Linux spot instance per second, a minute at least


@dataclass(frozen=True)
class PriceBound:
    """The most an instance whose price was never read costs per hour: never less than it does.

    Its type's listed spot price at launch (``RunInstances`` launches one type, and EC2 says
    which type a fleet chose); for a type not listed, the highest listed price, or
    ``max_price`` where that is lower (AWS charges no spot instance more).

    Example:
        >>> bound = PriceBound({"g4dn.xlarge": 0.1234567, "g5.xlarge": 0.52}, max_price=0.5)
        >>> bound.of("g4dn.xlarge"), bound.of("p3.2xlarge")
        (0.1234567, 0.5)
    """

    listed: Mapping[str, float] = field(default_factory=dict)
    max_price: float | None = None

    def of(self, instance_type: str) -> float:
        """Dollars per hour an instance of ``instance_type`` costs at most."""
        highest = self.listed.get(instance_type, max(self.listed.values(), default=math.inf))
        bound = highest if self.max_price is None else min(highest, self.max_price)
        return 0.0 if math.isinf(bound) else bound


@dataclass
class _Entry:
    price: float
    start: float
    end: float | None = None
    estimated: bool = False  # price is a PriceBound's: its tag was never read


class Ledger:
    """Launch time, price and end of each instance the launcher has seen.

    Attributes:
        bound: What an instance without a price tag is charged per hour (the launcher sets
            it once it has read the spot prices).
    """

    def __init__(self, bound: PriceBound | None = None) -> None:
        self.entries: dict[str, _Entry] = {}
        self.bound = bound or PriceBound()

    def update(self, instances: Iterable[Instance], now: float) -> None:
        """Record new instances, the price of those whose tag came since, and the end of those gone."""
        for inst in instances:
            entry = self.entries.get(inst.instance_id)
            if entry is None:
                entry = _Entry(0.0, min(inst.launch_time.timestamp(), now), estimated=True)
                self.entries[inst.instance_id] = entry
            if entry.estimated:
                entry.price = self.bound.of(inst.instance_type) if inst.price is None else inst.price
                entry.estimated = inst.price is None
            if not inst.alive and entry.end is None:  # when EC2 says it ended, where it says
                ended = now if inst.ended is None else inst.ended.timestamp()
                entry.end = min(max(ended, entry.start), now)

    def close(self, now: float) -> None:
        """Every instance has been terminated by now."""
        for entry in self.entries.values():
            if entry.end is None:
                entry.end = now

    def spent(self, now: float) -> float:
        """Dollars spent on instances until ``now``."""
        return sum(e.price * max((e.end or now) - e.start, MINIMUM_S) / 3600.0 for e in self.entries.values())

    def hourly_rate(self) -> float:
        """Dollars per hour of the instances still running."""
        return sum(e.price for e in self.entries.values() if e.end is None)

    def estimated(self) -> list[float]:
        """The hourly prices charged to instances whose price was never read (upper bounds)."""
        return [e.price for e in self.entries.values() if e.estimated]


@dataclass
class Settled:
    """What a session charged the study for the instances of launchers killed before they billed them.

    Attributes:
        instances: How many such instances it billed.
        usd: The dollars it charged for them (what their launchers had not).
        bounds: The hourly upper bounds charged to those whose price was never read.
        prices: The hourly price of each (the trials are costed at the mean price).
    """

    instances: int = 0
    usd: float = 0.0
    bounds: list[float] = field(default_factory=list)
    prices: list[float] = field(default_factory=list)

    def words(self) -> str:
        """What the cost line says of them; nothing where there were none."""
        if not self.instances:
            return ""
        return f"{usd(self.usd)} for {self.instances} instance(s) of a launcher killed before it billed them"


@dataclass(frozen=True)
class StudyCost:
    """What the instances cost: this launcher session, and the study over all its sessions."""

    session_usd: float
    study_usd: float
    estimated: tuple[float, ...] = ()  # the upper bounds charged to instances of unread price
    settled: str = ""  # what a killed launcher left unbilled and this session charged, in words

    def note(self) -> str:
        """Words that say the cost includes upper bounds or a killed launcher's instances; else nothing.

        Example:
            >>> StudyCost(0.5, 0.5, estimated=(0.1234567, 0.1)).note()
            ' (includes 2 instance(s) priced at most $0.1235/h: their price was never read)'
        """
        parts = [self.settled] if self.settled else []
        if self.estimated:
            parts.append(estimate_words(len(self.estimated), max(self.estimated)))
        return f" (includes {'; '.join(parts)})" if parts else ""


def recorded_cost(study: optuna.Study, without: str | None = None) -> float:
    """Dollars the study's instances cost but ``without``'s: over all its sessions, running ones too.

    A study from before launchers kept records keeps its ``autotweak.cost_usd`` as its base
    (:data:`~autotweak._trial_costs.BASE_ATTR`, written here once): launcher records add to it.
    """
    try:
        attrs = study.user_attrs
        if BASE_ATTR not in attrs:
            # Records of launchers that ran before the base existed are counted in cost_usd already.
            base = (spot_dollars(attrs) or 0.0) - (spot_dollars({**attrs, BASE_ATTR: 0.0}) or 0.0)
            study.set_user_attr(BASE_ATTR, max(0.0, base))
            attrs = {**attrs, BASE_ATTR: max(0.0, base)}
        return spot_dollars(attrs, without=without) or 0.0
    except (TypeError, ValueError):
        _log.warning("study '%s' holds an unreadable %s; counting 0 USD spent", study.study_name, COST_ATTR)
        return 0.0


def record_cost(study: optuna.Study, earlier: float, ledger: Ledger, now: float) -> None:
    """Keep the study's cost so far in the study while the launcher runs: a killed launcher loses a poll."""
    try:
        study.set_user_attr(COST_ATTR, earlier + ledger.spent(now))
    except Exception as exc:  # the final log_costs writes it again
        _log.debug("could not record the study's running cost: %s", exc)


def trial_costs(study: optuna.Study, price: float) -> dict[int, float]:
    """Each finished trial's run time at ``price`` dollars per hour."""
    costs: dict[int, float] = {}
    for t in study.get_trials(deepcopy=False):
        if t.state.is_finished() and t.datetime_start and t.datetime_complete:
            seconds = (t.datetime_complete - t.datetime_start).total_seconds()
            costs[t.number] = price * seconds / 3600.0
    return costs


def log_costs(
    ctx: WorkerContext, study: optuna.Study, ledger: Ledger, earlier: float, settled: Settled | None = None
) -> StudyCost:
    """Log ``cost_usd`` on each trial's child run and on the study's parent run.

    ``earlier`` is what the study cost before this session (and what it charged for
    ``settled``, the instances of killed launchers): the study's cost becomes ``earlier``
    plus this session's, whatever :func:`record_cost` wrote meanwhile.
    """
    settled = settled or Settled()
    ledger.close(time.time())
    total = ledger.spent(time.time())
    prices = [e.price for e in ledger.entries.values()] + settled.prices
    costs = trial_costs(study, sum(prices) / len(prices) if prices else 0.0)
    cost = StudyCost(total, earlier + total, tuple(ledger.estimated() + settled.bounds), settled.words())
    try:
        study.set_user_attr(COST_ATTR, earlier + total)
        study.set_user_attr(TRIAL_COSTS_ATTR, {str(n): c for n, c in costs.items()})
        if ledger.estimated():  # for the report: the study's cost includes upper bounds (settled's: kept)
            study.set_user_attr(
                ESTIMATE_ATTR, merged_estimate(study.user_attrs.get(ESTIMATE_ATTR), ledger.estimated())
            )
        if ctx.tracking_uri and ctx.study_run_id and _answers(ctx.tracking_uri):
            _log_to_mlflow(ctx.tracking_uri, ctx.study_run_id, study.study_name, earlier + total, costs)
    except Exception as exc:  # the bill is a report: never lose the study over it
        _log.warning("could not record the study's cost: %s", exc)
    _log.info(
        "instances cost %s this session, %s for the study (%d trial(s) costed)%s",
        usd(total),
        usd(earlier + total),
        len(costs),
        cost.note(),
    )
    return cost


def _answers(uri: str) -> bool:
    """Whether the tracking server answers (one quick request): MLflow's client retries for minutes.

    One that does not misses the costs in MLflow only: the study keeps them, and the
    report reads them there.
    """
    try:
        check_tracking_server(uri)
    except TrackingError as exc:
        _log.info("the study's costs are not written to MLflow (%s); the study keeps them", exc)
        return False
    return True


def _log_to_mlflow(uri: str, run_id: str, study_name: str, total: float, costs: dict[int, float]) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    client.log_metric(run_id, METRIC, total)
    experiment = client.get_experiment_by_name(study_name)
    if experiment is None:
        return
    runs = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`autotweak.kind` = 'trial'", max_results=50000
    )
    for run in runs:
        number = int(run.data.tags.get("autotweak.trial_number", -1))
        if number in costs and METRIC not in run.data.metrics:
            client.log_metric(run.info.run_id, METRIC, costs[number])
