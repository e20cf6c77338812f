"""Bringing the tracker in line with Optuna, the coordination truth, after a crash.

A worker killed between telling Optuna and closing the trial's record leaves a record
open for a trial that is finished. Stale-trial detection cannot see it (the trial is not
running), so the study closes such records from what Optuna holds: state, value, curve.
"""

from __future__ import annotations

import logging

import optuna
from optuna.trial import FrozenTrial, TrialState

from autotweak.engine._study import ATTR, frozen_compute
from autotweak.tracking import BaseTracker, TrialRecord

__all__ = ["reconcile"]

_log = logging.getLogger(__name__)

_STATE = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}


def reconcile(study: optuna.Study, tracker: BaseTracker, metric: str, steps: int | None) -> int:
    """Close the open records of finished trials; return how many were closed."""
    try:
        open_records = tracker.open_trials(study.study_name)
    except Exception:
        _log.warning("could not list the open trial records of '%s'", study.study_name, exc_info=True)
        return 0
    if not open_records:
        return 0
    finished = {t._trial_id: t for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
    closed = 0
    for trial_id, run_id in open_records.items():
        trial = finished.get(trial_id)
        if trial is not None:
            tracker.end_trial(_record(trial, run_id, metric, steps))
            closed += 1
    if closed:
        _log.warning("closed %d trial record(s) left open by a crashed worker", closed)
    return closed


def _record(trial: FrozenTrial, run_id: str, metric: str, steps: int | None) -> TrialRecord:
    stamp = (
        int((trial.datetime_complete or trial.datetime_start).timestamp() * 1000)
        if trial.datetime_start
        else 0
    )
    curve = [(s, float(v), stamp) for s, v in sorted(trial.intermediate_values.items())]
    value = trial.value if trial.state == TrialState.COMPLETE else (curve[-1][1] if curve else None)
    duration = 0.0
    if trial.datetime_start and trial.datetime_complete:
        duration = (trial.datetime_complete - trial.datetime_start).total_seconds()
    return TrialRecord(
        run_id=run_id,
        number=trial.number,
        state=_STATE[trial.state],  # type: ignore[arg-type]
        metric=metric,
        value=None if trial.state == TrialState.FAIL else value,
        steps=curve,
        duration=duration,
        compute=frozen_compute(trial, steps),
        failure=trial.user_attrs.get(ATTR.FAILURE),
        extra_tags={"autotweak.reconciled": "true"},
    )
