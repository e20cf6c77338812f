"""How a trial ended, and Optuna told so: the one write of a trial's end state.

A stale-trial sweep may have failed the trial meanwhile (its worker frozen, its heartbeat
cut off): the outcome returned is then the one Optuna holds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from autotweak._optuna_private import tell
from autotweak.engine._study import ATTR

__all__ = ["REQUEUED", "Outcome", "tell_outcome"]

_log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """How a trial ended."""

    state: str
    value: float | None
    failure: str | None = None
    traceback: str | None = None
    settled: bool = False  # failed by another process (a stale-trial sweep), which closes its record


_TELL_STATE = {
    "complete": TrialState.COMPLETE,
    "pruned": TrialState.PRUNED,
    "failed": TrialState.FAIL,
    "preempted": TrialState.FAIL,
    "interrupted": TrialState.FAIL,
}
REQUEUED = ("preempted", "interrupted")  # outcomes whose trial is queued to run again


def tell_outcome(study: optuna.Study, trial: optuna.Trial, outcome: Outcome, *, runs_again: bool) -> Outcome:
    """Tell Optuna how ``trial`` ended; a trial already failed as stale stays failed.

    A preempted trial is marked (:attr:`ATTR.PREEMPTED <autotweak.engine._study.ATTR>`)
    before it is told, as an interrupted one is, so that it is told apart from a failure;
    one that ``runs_again`` (its retries allow one more attempt) is marked so too.

    Optuna is told without reading the trial back, as ``Study.tell`` would (see
    :func:`autotweak._optuna_private.tell`).
    """
    told = _TELL_STATE[outcome.state]
    try:
        if outcome.failure:
            trial.set_user_attr(ATTR.FAILURE, outcome.failure[:2000])
        if outcome.state == "preempted":  # told FAIL, but the objective did not fail
            trial.set_user_attr(ATTR.PREEMPTED, True)
            if runs_again:  # its retry counts from now (see _lost_trials)
                trial.set_user_attr(ATTR.RUNS_AGAIN, True)
        value = outcome.value if told == TrialState.COMPLETE else None
        state = tell(study, trial, value, told)
    except UpdateFinishedTrialError:  # finished before this write
        state = None
    if state == told and (
        told != TrialState.FAIL or outcome.state in REQUEUED or _ours(study, trial, outcome)
    ):
        return outcome  # told now, or by an earlier attempt of this call before a broken connection
    return _failed_elsewhere(study, trial, outcome)


def _ours(study: optuna.Study, trial: optuna.Trial, outcome: Outcome) -> bool:
    """Whether a failed trial's failure is this worker's: a stale-trial sweep may have written its own."""
    stored = study._storage.get_trial(trial._trial_id).user_attrs.get(ATTR.FAILURE)
    return stored == (outcome.failure[:2000] if outcome.failure else None)


def _failed_elsewhere(study: optuna.Study, trial: optuna.Trial, outcome: Outcome) -> Outcome:
    """The outcome of a trial that another process failed while it ran, as Optuna holds it.

    A stale-trial sweep (its worker frozen past the grace period, or its heartbeat
    cut off) failed it and queued its retry; the record says the sweep's reason, as
    Optuna and the report do, not what this worker made of it late (a complete value,
    or the error its report raised once the trial was failed). A preempted or
    interrupted trial so failed stays as it is told: its retry is queued once (see
    :meth:`~autotweak.engine._session.TrialSession.record`).
    """
    stored = study._storage.get_trial(trial._trial_id)
    if outcome.state in REQUEUED and stored.state == TrialState.FAIL:
        return outcome
    reason = stored.user_attrs.get(ATTR.FAILURE) or "finished after it was declared stale; its retry counts"
    _log.warning(
        "trial %d finished after another process failed it (%s); its retry counts", trial.number, reason
    )
    return Outcome("failed", outcome.value, reason, settled=True)
