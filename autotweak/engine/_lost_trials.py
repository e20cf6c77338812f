"""Closing the record of a trial whose worker is gone: failed with the reason, with the curve Optuna holds.

A trial whose worker is known to be gone (the process that started it saw it die) is
settled at once, as the stale-trial sweep would: failed with the reason, in both stores,
and queued to run again. A worker lost before it opened the trial's record leaves none:
one is opened, so that every Optuna trial still has its run.
"""

from __future__ import annotations

import functools
import logging

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from autotweak._trial_costs import trial_dollars
from autotweak.engine._closed import optuna_record
from autotweak.engine._reconcile import lost_trial_start
from autotweak.engine._retries import attempt_left, requeue
from autotweak.engine._study import ATTR
from autotweak.engine._summary import steps_of
from autotweak.tracking import BaseTracker

__all__ = ["fail_lost_record", "settle_crashed"]

_log = logging.getLogger(__name__)


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
    """Close the record of a trial whose worker is gone: failed with ``reason``, from what Optuna holds.

    Its worker wrote the curve's points as they came, through a writer that died with it:
    the record gets the points it lacks, and what its worker's close would have written
    (``final_<metric>``, ``compute``, ``duration_s``: see :mod:`~autotweak.engine._closed`).
    A trial the stale-trial sweep failed as preempted (its spot machine went away) is closed
    as preempted. A worker lost before it opened the trial's record leaves none: one is
    opened, so that every Optuna trial still has its run. A tracker that cannot be reached
    is warned of; a catch-up writes the record later.
    """
    try:
        run_id = tracker.find_trial(study.study_name, trial._trial_id) or tracker.start_trial(
            lost_trial_start(study, trial)
        )
        record = optuna_record(
            trial,
            str(run_id),
            metric,
            steps_of(study),
            functools.partial(_attempt, study),
            costs=trial_dollars(study.user_attrs, [trial]),
            failure=reason,
            reconciled=False,  # its worker's record (or one opened for it), closed as its worker would
        )
        tracker.end_trial(record)
    except Exception:
        _log.warning("could not close the record of lost trial %d", trial.number, exc_info=True)


def _attempt(study: optuna.Study, number: int) -> FrozenTrial | None:
    """The study's trial ``number`` (an earlier attempt of a retry), read on its own."""
    storage = study._storage
    try:
        return storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study._study_id, number))
    except KeyError:
        return None
