"""Closing the record of a trial whose worker is gone: failed with the reason, with the curve Optuna holds.

A trial whose worker is known to be gone (the process that started it saw it die) is
settled at once, as the stale-trial sweep would: failed with the reason, in both stores,
and queued to run again. A worker lost before it opened the trial's record leaves none:
one is opened, so that every Optuna trial still has its run.
"""

from __future__ import annotations

import logging

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from autotweak.engine._reconcile import curve_points, lost_trial_start
from autotweak.engine._retries import attempt_left, requeue
from autotweak.engine._study import ATTR, state_of
from autotweak.tracking import BaseTracker

__all__ = ["fail_lost_record", "fail_record", "settle_crashed"]

_log = logging.getLogger(__name__)


def fail_record(study: optuna.Study, tracker: BaseTracker, trial: FrozenTrial, reason: str) -> str | None:
    """Close a lost trial's record as failed with ``reason``; open one first if its worker never did.

    A trial the stale-trial sweep failed as preempted (its spot machine went away) is closed
    as preempted.

    Returns the record's id (``None`` if the tracker could not be reached: a warning is logged).
    """
    try:
        # A worker lost before it opened the trial's record leaves none: open one, so that
        # every Optuna trial still has its run.
        run_id = tracker.find_trial(study.study_name, trial._trial_id) or tracker.start_trial(
            lost_trial_start(study, trial)
        )
        preempted = state_of(trial) == "preempted"
        tracker.mark_failed(str(run_id), reason, state="preempted" if preempted else "failed")
        return str(run_id)
    except Exception:
        _log.warning("could not close the record of lost trial %d", trial.number, exc_info=True)
        return None


def settle_crashed(
    study: optuna.Study,
    tracker: BaseTracker,
    trial_id: int,
    reason: str,
    *,
    metric: str,
    max_retries: int,
) -> bool:
    """Fail a running trial whose worker process is known to be gone, and queue it again.

    Its failure says ``reason`` in both stores, its record keeps the curve Optuna holds,
    and the retry carries its marks (:func:`~autotweak.engine._retries.requeue`). Returns
    whether the trial was still running (one that finished meanwhile is left as it is).

    A trial that runs again is marked so (:attr:`ATTR.RUNS_AGAIN
    <autotweak.engine._study.ATTR>`) before it fails: its record is closed between its
    failure and its retry, and a progress count read then would count it, then its retry
    in its place, one less (``done 5/10``, then ``4/10``). A process gone in between leaves
    the mark, and :func:`~autotweak.engine._lost_retries.queue_lost_retries` queues the retry.
    """
    storage = study._storage
    try:
        storage.set_trial_user_attr(trial_id, ATTR.FAILURE, reason[:2000])  # while it may still be written
        if attempt_left(storage.get_trial(trial_id).user_attrs, max_retries):
            # Said before it fails: a progress count read in between counts its retry, not it.
            storage.set_trial_user_attr(trial_id, ATTR.RUNS_AGAIN, True)
        if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            return False
    except UpdateFinishedTrialError:
        return False  # it finished, or a stale-trial sweep failed (and queued) it first
    trial = storage.get_trial(trial_id)
    fail_lost_record(study, tracker, trial, reason, metric)
    _log.warning("trial %d failed: %s", trial.number, reason)
    requeue(study, trial.number, dict(trial.params), trial.user_attrs, max_retries=max_retries)
    return True


def fail_lost_record(
    study: optuna.Study, tracker: BaseTracker, trial: FrozenTrial, reason: str, metric: str
) -> None:
    """Close the record of a trial whose worker is gone: failed with ``reason``, with the curve Optuna holds.

    Its worker wrote the curve's points as they came, through a writer that died with it:
    the record gets the points it lacks from Optuna.
    """
    run_id = fail_record(study, tracker, trial, reason)
    if run_id is not None and trial.intermediate_values:
        try:
            tracker.log_steps(run_id, metric, curve_points(trial))
        except Exception:
            _log.warning("could not write the curve of lost trial %d", trial.number, exc_info=True)
