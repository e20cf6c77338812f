"""Queueing again the interrupted and preempted trials whose workers were killed before they did.

A worker tells an interrupted or preempted trial FAIL first, then keeps its checkpoint and
queues it to run again. Killed in between (SIGKILL at the end of a terminated instance's
shutdown, the OOM killer), it leaves a trial stopped through no fault of its own and no
retry: :func:`queue_lost_retries` queues it, as the worker would have, when the study
opens or closes (with the grace period: see :mod:`autotweak.engine._reconcile`).
"""

from __future__ import annotations

import logging

import optuna
from optuna.trial import FrozenTrial, TrialState

from autotweak.engine._reconcile import finished_before
from autotweak.engine._retries import attempt_left, requeue
from autotweak.engine._study import ATTR, state_of
from autotweak.tracking import BaseTracker

__all__ = ["queue_lost_retries", "unqueued"]

_log = logging.getLogger(__name__)


def queue_lost_retries(study: optuna.Study, tracker: BaseTracker, *, settle: float, max_retries: int) -> int:
    """Queue the interrupted and preempted trials that have no retry to run again; return how many.

    Their workers were killed between telling them and queueing them (see the module's
    documentation), as was the process that failed a dead worker's trial to run again
    (:func:`~autotweak.engine._lost_trials.settle_crashed`) if it did not queue it. Each
    retry carries what :func:`~autotweak.engine._retries.requeue` gives it, and resumes from
    the checkpoint the killed worker kept in the trial's own record (it keeps it there before
    it queues the retry), else from an earlier attempt's; an interrupted trial is queued
    whatever its attempt, a preempted one up to ``max_retries`` times.

    ``settle``: only trials finished at least this many seconds ago, whose workers, if still
    alive, have queued them by then.
    """
    trials = study.get_trials(deepcopy=False)
    lost = unqueued(trials, max_retries, among=finished_before(trials, settle))
    queued = [
        t.number
        for t in lost
        if requeue(
            study,
            t.number,
            dict(t.params),
            t.user_attrs,
            max_retries=max_retries,
            checkpoint_run=_kept_checkpoint(study, tracker, t),
        )
    ]
    if queued:
        _log.warning(
            "queued %d interrupted, preempted or crashed trial(s) to run again, which were stopped "
            "before their retry was queued: %s",
            len(queued),
            ", ".join(f"trial {n}" for n in queued),
        )
    return len(queued)


def unqueued(
    trials: list[FrozenTrial], max_retries: int, *, among: list[FrozenTrial] | None = None
) -> list[FrozenTrial]:
    """The interrupted and preempted trials (of ``among``, else all) that are owed a retry and have none.

    An interrupted trial is always owed one; a preempted one up to ``max_retries`` attempts
    (one past them was said so by its worker, and :func:`requeue` would say it again); a
    dead or lost worker's trial if it was marked to run again as it failed (see
    :func:`~autotweak.engine._lost_trials.settle_crashed` and
    :func:`~autotweak.engine._stale.fail_stale`; a trial its worker finished after the
    stale-trial sweep marked it did not fail).
    """
    retried = {t.user_attrs.get(ATTR.RETRY_OF) for t in trials}
    return [
        t
        for t in (trials if among is None else among)
        if t.number not in retried
        and t.state.is_finished()
        and (
            (state := state_of(t)) == "interrupted"
            or (t.state == TrialState.FAIL and t.user_attrs.get(ATTR.RUNS_AGAIN))
            or (state == "preempted" and attempt_left(t.user_attrs, max_retries))
        )
    ]


def _kept_checkpoint(study: optuna.Study, tracker: BaseTracker, trial: FrozenTrial) -> str | None:
    """The trial's own record, if its worker kept a whole checkpoint there before it was killed."""
    try:
        run_id = tracker.find_trial(study.study_name, trial._trial_id)
        return run_id if run_id is not None and tracker.checkpoint_kept(run_id) else None
    except Exception as exc:  # the retry resumes from an earlier attempt's checkpoint, or its start
        _log.warning(
            "could not look for the checkpoint of trial %d in its record (%s: %.200s); its retry "
            "resumes from an earlier attempt's checkpoint, if any",
            trial.number,
            type(exc).__name__,
            exc,
        )
        return None
