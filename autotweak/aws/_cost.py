"""What the study's instances cost: an instance ledger, per-trial and per-study costs in MLflow.

The bill is instance time: from launch until terminated, at the spot price the instance
was launched at (the ``autotweak:price`` tag). A trial's cost is its run time at the
mean hourly price of the study's instances; the study's cost also counts boot and idle
time, so it is the larger of the two.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

import optuna

from autotweak._money import usd
from autotweak._trial_costs import COST_ATTR, TRIAL_COSTS_ATTR
from autotweak._trial_costs import COST_METRIC as METRIC
from autotweak.aws._ec2 import Instance
from autotweak.engine._session import WorkerContext
from autotweak.exceptions import TrackingError
from autotweak.tracking import check_tracking_server

__all__ = ["COST_ATTR", "Ledger", "StudyCost", "log_costs", "record_cost", "recorded_cost"]

_log = logging.getLogger(__name__)


@dataclass
class _Entry:
    price: float
    start: float
    end: float | None = None


class Ledger:
    """Launch time, price and end of each instance the launcher has seen."""

    def __init__(self) -> None:
        self.entries: dict[str, _Entry] = {}

    def update(self, instances: Iterable[Instance], now: float) -> None:
        """Record new instances and the end of those that are gone."""
        for inst in instances:
            entry = self.entries.get(inst.instance_id)
            if entry is None:
                entry = _Entry(inst.price or 0.0, min(inst.launch_time.timestamp(), now))
                self.entries[inst.instance_id] = entry
            if not inst.alive and entry.end is None:
                entry.end = now

    def close(self, now: float) -> None:
        """Every instance has been terminated by now."""
        for entry in self.entries.values():
            if entry.end is None:
                entry.end = now

    def spent(self, now: float) -> float:
        """Dollars spent on instances until ``now``."""
        return sum(e.price * ((e.end or now) - e.start) / 3600.0 for e in self.entries.values())

    def hourly_rate(self) -> float:
        """Dollars per hour of the instances still running."""
        return sum(e.price for e in self.entries.values() if e.end is None)

    def mean_price(self) -> float:
        """The mean hourly price of the study's instances."""
        prices = [e.price for e in self.entries.values()]
        return sum(prices) / len(prices) if prices else 0.0


@dataclass(frozen=True)
class StudyCost:
    """What the instances cost: this launcher session, and the study over all its sessions."""

    session_usd: float
    study_usd: float


def recorded_cost(study: optuna.Study) -> float:
    """Dollars the study's instances cost in earlier sessions (its ``autotweak.cost_usd``)."""
    try:
        return float(study.user_attrs.get(COST_ATTR, 0.0))
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


def log_costs(ctx: WorkerContext, study: optuna.Study, ledger: Ledger, earlier: float) -> StudyCost:
    """Log ``cost_usd`` on each trial's child run and on the study's parent run.

    ``earlier`` is what the study cost before this session: the study's cost becomes
    ``earlier`` plus this session's, whatever :func:`record_cost` wrote meanwhile.
    """
    ledger.close(time.time())
    total = ledger.spent(time.time())
    costs = trial_costs(study, ledger.mean_price())
    try:
        study.set_user_attr(COST_ATTR, earlier + total)
        study.set_user_attr(TRIAL_COSTS_ATTR, {str(n): c for n, c in costs.items()})
        if ctx.tracking_uri and ctx.study_run_id and _answers(ctx.tracking_uri):
            _log_to_mlflow(ctx.tracking_uri, ctx.study_run_id, study.study_name, earlier + total, costs)
    except Exception as exc:  # the bill is a report: never lose the study over it
        _log.warning("could not record the study's cost: %s", exc)
    _log.info(
        "instances cost %s this session, %s for the study (%d trial(s) costed)",
        usd(total),
        usd(earlier + total),
        len(costs),
    )
    return StudyCost(total, earlier + total)


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
