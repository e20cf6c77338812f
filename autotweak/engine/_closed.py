"""What a trial's closed record holds when another process writes it from Optuna's trial.

A trial's record is closed by its worker (:meth:`~autotweak.engine._session.TrialSession.record`)
or, its worker gone, by the process that settles the trial: the stale-trial sweep, the
settler of a dead worker process (:mod:`~autotweak.engine._lost_trials`), or a catch-up
that writes what MLflow lacks (:mod:`~autotweak.engine._reconcile`). Each hands the
tracker one :class:`~autotweak.tracking.TrialRecord`, which its ``end_trial`` writes: the
one place where a record's state, failure, ``final_<metric>``, ``compute``,
``duration_s`` and curve become tags and metrics. Here that record is made from Optuna's:

- ``final_<metric>``: a complete trial's value; the last report of a pruned, preempted or
  interrupted trial, and of one whose worker was lost (its objective did not fail, as a
  preempted one's did not); none for a trial its objective failed.
- ``duration_s``: from the trial's start to its end in Optuna (for a lost worker's trial,
  the sweep or the settler that failed it: the time the trial held its worker).
- ``compute``: the full trainings its reported steps make, as the study's summary counts it.
- ``cost_usd``: a spot trial's dollars, where the study already holds them (a session's close).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from optuna.trial import FrozenTrial, TrialState

from autotweak._attrs import PRUNER_PREFIX
from autotweak._trial_costs import COST_METRIC
from autotweak.engine._killed import CRASHED, KILLED
from autotweak.engine._stale import LOST_WORKER
from autotweak.engine._study import ATTR, state_of
from autotweak.engine._summary import frozen_compute
from autotweak.tracking import RECONCILED_TAG, TrialRecord

__all__ = ["curve_points", "optuna_record", "worker_lost"]


def optuna_record(
    trial: FrozenTrial,
    run_id: str,
    metric: str,
    steps: int | None,
    attempts: Callable[[int], FrozenTrial | None],
    *,
    costs: Mapping[int, float] | None = None,
    failure: str | None = None,
    reconciled: bool = True,
) -> TrialRecord:
    """``trial``'s record as its worker's close would have written it, from what Optuna holds.

    Args:
        trial: A finished trial.
        run_id: Its record.
        metric: The study's metric.
        steps: Report steps in one full training (``None``: unknown).
        attempts: Looks the study's trials up by number (:func:`~._summary.attempts_of`).
        costs: Dollars per trial number that the study holds (:func:`~autotweak._trial_costs.trial_dollars`).
        failure: Why it failed, where the settler says more than the trial's attr keeps.
        reconciled: Tag the record as a catch-up's (:data:`~autotweak.tracking.RECONCILED_TAG`).
    """
    curve = curve_points(trial)
    state = state_of(trial)
    value = trial.value if trial.state == TrialState.COMPLETE else (curve[-1][1] if curve else None)
    duration = 0.0
    if trial.datetime_start and trial.datetime_complete:
        duration = (trial.datetime_complete - trial.datetime_start).total_seconds()
    cost = (costs or {}).get(trial.number)
    return TrialRecord(
        run_id=run_id,
        number=trial.number,
        state=state,  # type: ignore[arg-type]  # a finished trial's: preempted, interrupted too
        metric=metric,
        value=None if state == "failed" and not worker_lost(trial) else value,
        steps=curve,
        duration=duration,
        compute=frozen_compute(trial, steps, attempts),
        failure=failure or trial.user_attrs.get(ATTR.FAILURE),
        extra_tags={**({RECONCILED_TAG: "true"} if reconciled else {}), **_close_tags(trial)},
        extra_metrics={} if cost is None else {COST_METRIC: cost},
    )


def worker_lost(trial: FrozenTrial) -> bool:
    """Whether ``trial`` failed because its worker was lost, not because its objective raised.

    The stale-trial sweep's reason, or the settler's of a worker process that died.
    """
    failure = str(trial.user_attrs.get(ATTR.FAILURE) or "")
    return trial.state == TrialState.FAIL and (
        failure == LOST_WORKER or failure.startswith((CRASHED, KILLED))
    )


def curve_points(trial: FrozenTrial) -> list[tuple[int, float, int]]:
    """The trial's intermediate values as curve points, stamped as its worker flushed them.

    A worker's flush, or its close, may still land after this writes them (see
    :meth:`~autotweak.engine._trial.Trial._keep_stamps` and
    :meth:`~autotweak.engine._trial.Trial.keep_close_stamps`): stamped alike, MLflow keeps
    one point per step. Points of no kept stamp (a worker killed before its close, a study
    begun before the close kept them) are stamped with the trial's end.
    """
    stamp = (
        int((trial.datetime_complete or trial.datetime_start).timestamp() * 1000)
        if trial.datetime_start
        else 0
    )
    flushed = {
        int(s): int(ts)
        for key, points in trial.system_attrs.items()
        if key.startswith(ATTR.CURVE_MS)
        for s, ts in points
    }
    return [(s, float(v), flushed.get(s, stamp)) for s, v in sorted(trial.intermediate_values.items())]


def _close_tags(trial: FrozenTrial) -> dict[str, str]:
    """The tags its worker's close gives a trial's record: the base config's mark, a pruned trial's notes."""
    attrs = trial.user_attrs
    tags = {ATTR.BASELINE: "true"} if attrs.get(ATTR.BASELINE) else {}
    if trial.state == TrialState.PRUNED:
        tags |= {k: str(v) for k, v in attrs.items() if k.startswith(PRUNER_PREFIX)}
    return tags
