"""Trials that did not finish, run again: their marks (interrupted, on a spot machine) and retries.

A retry keeps its root trial's number (so it finds the same checkpoint folder) and the
marks of what it was run for; :func:`first_step` follows the chain of attempts back to the
one that started the training.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState, create_trial

from autotweak.engine._study import ATTR
from autotweak.engine._summary import training_first

__all__ = [
    "attempt_left",
    "INTERRUPTED_FAILURE",
    "ask_reclaimable",
    "first_step",
    "mark_interrupted",
    "requeue",
]

_log = logging.getLogger(__name__)


INTERRUPTED_FAILURE = "interrupted (Ctrl-C or SIGTERM); queued to run again"


def mark_interrupted(trial: optuna.Trial) -> None:
    """Mark a running trial as stopped by Ctrl-C: :func:`requeue` then always queues it again."""
    try:
        trial.set_user_attr(ATTR.INTERRUPTED, True)
    except UpdateFinishedTrialError:  # declared stale meanwhile: its retry is queued already
        _log.info("trial %d finished before it could be marked as interrupted", trial.number)


def ask_reclaimable(study: optuna.Study) -> optuna.Trial:
    """``study.ask()`` on a spot machine: the trial is marked reclaimable from the write that starts it.

    Lost without a notice, a trial so marked is preempted, not failed: the stale-trial sweep
    that finds it lost reads the mark (:func:`~autotweak.engine._stale.fail_stale`).

    A trial the sampler proposes is created with the mark (one write), so that a machine
    that goes away at any moment after leaves a preempted trial, never a failed one. A
    queued trial (the baseline, a proposal, a retry) is taken from the queue by Optuna's
    own write, and marked by the next one, before the trial is built or its heartbeat
    starts: a machine lost between those two writes leaves it failed as a lost worker
    (and run again all the same). Marking it before taking it would leave the mark on a
    queued trial that another machine, not a spot one, may take next.
    """
    study._thread_local.cached_all_trials = None  # as Study.ask: read the storage afresh once per trial
    trial_id = study._pop_waiting_trial_id()
    if trial_id is None:
        marked = create_trial(state=TrialState.RUNNING, user_attrs={ATTR.RECLAIMABLE: True})
        trial_id = study._storage.create_new_trial(study._study_id, template_trial=marked)
    else:
        with contextlib.suppress(UpdateFinishedTrialError):  # declared stale meanwhile
            study._storage.set_trial_user_attr(trial_id, ATTR.RECLAIMABLE, True)
    return optuna.Trial(study, trial_id)


def attempt_left(user_attrs: Mapping[str, Any], max_retries: int) -> bool:
    """Whether a trial that did not finish (``user_attrs``: its own) may be run once more."""
    return int(user_attrs.get(ATTR.ATTEMPT, 1)) <= max_retries


def requeue(
    study: optuna.Study,
    number: int,
    params: dict[str, Any],
    user_attrs: Mapping[str, Any],
    *,
    max_retries: int,
    checkpoint_run: str | None = None,
) -> bool:
    """Queue a trial that did not finish (stale, preempted, interrupted) to run again.

    The new attempt keeps the root trial's number, so it finds the same checkpoint folder,
    and carries the trial's marks: the baseline's, an ablation's, and the meta-learner proposal it ran.
    A trial the user interrupted is always queued again (Ctrl-C says nothing about the
    trial); the others up to ``max_retries`` times.
    """
    previous = _stored(study, number)
    interrupted = bool(previous.user_attrs.get(ATTR.INTERRUPTED))
    attempt = int(user_attrs.get(ATTR.ATTEMPT, 1))
    if not attempt_left(user_attrs, max_retries) and not interrupted:
        _log.warning("trial %d did not finish %d times; not run again", number, attempt)
        return False
    attrs: dict[str, Any] = {
        ATTR.RETRY_OF: number,
        ATTR.ROOT: int(user_attrs.get(ATTR.ROOT, number)),
        ATTR.ATTEMPT: attempt + 1,
    }
    for mark in (ATTR.BASELINE, ATTR.ABLATION):  # what the trial was run for
        if user_attrs.get(mark):
            attrs[mark] = True
    checkpoint_run = checkpoint_run or user_attrs.get(ATTR.CHECKPOINT_RUN)  # a retry of a retry keeps it
    if checkpoint_run:
        attrs[ATTR.CHECKPOINT_RUN] = checkpoint_run
    from autotweak.meta._records import PROPOSAL_ATTR, RETRY_KEY  # rarely needed; the package imports NumPy

    system: dict[str, Any] = {"fixed_params": params}  # what ``Study.enqueue_trial`` stores
    proposal = previous.system_attrs.get(PROPOSAL_ATTR)
    if isinstance(proposal, dict):
        system[PROPOSAL_ATTR] = {**proposal, RETRY_KEY: number}
    study.add_trial(create_trial(state=TrialState.WAITING, system_attrs=system, user_attrs=attrs))
    _log.info("trial %d queued again as attempt %d", number, attempt + 1)
    return True


def _stored(study: optuna.Study, number: int) -> FrozenTrial:
    """Trial ``number`` as the storage holds it now (its attrs written since it was asked for)."""
    storage = study._storage
    return storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study._study_id, number))


def first_step(study: optuna.Study, number: int) -> int | None:
    """The step at which trial ``number``'s training first reported, over its attempts.

    Each attempt is read from the storage as it is now (see
    :func:`~autotweak.engine._summary.training_first`). ``None`` if no attempt reported.
    """
    return training_first(_stored(study, number), lambda n: _stored(study, n))
