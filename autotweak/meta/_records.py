"""What ``MetaSampler`` records on a study and its trials, and how to read it back.

A trial that ran a proposal carries :data:`PROPOSAL_ATTR` (a system attribute); a tripped
negative-transfer guard is recorded on the study as :data:`GUARD_ATTR`, and why no model
served the study (when one fits its parameters) as :data:`NO_MODEL_ATTR`; at the end of a
study the engine stores every proposal with its outcome as :data:`PROPOSALS_ATTR`.

Example:
    >>> import optuna
    >>> study = optuna.create_study()
    >>> guard_of(study) is None, proposals_of(study.trials)
    (True, [])
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from autotweak._attrs import DRY_RUN_ATTR

__all__ = [
    "GUARD_AFTER",
    "GUARD_ATTR",
    "NO_MODEL_ATTR",
    "PROPOSALS_ATTR",
    "PROPOSAL_ATTR",
    "RETRY_KEY",
    "UNITS_KEY",
    "guard_of",
    "proposals_of",
    "say_no_model",
]

PROPOSAL_ATTR = "autotweak.meta_proposal"
# The unit point a trial was given when asked for, before it stores its values: another
# process's worker, which asks next, must not propose it again.
CLAIM_ATTR = "autotweak.meta_claim"
GUARD_AFTER = 5  # results the negative-transfer guard needs before it judges the prior
GUARD_ATTR = "autotweak.meta_guard"
NO_MODEL_ATTR = "autotweak.meta_no_model"  # on the study: the note of why no model serves it, once said
PROPOSALS_ATTR = "autotweak.meta_proposals"
RETRY_KEY = "retry_of"  # in the proposal record that a trial run again carries: the trial it re-runs
UNITS_KEY = "units"

_log = logging.getLogger(__name__)


def guard_of(study: Study) -> dict[str, Any] | None:
    """What the negative-transfer guard recorded on ``study``, or ``None`` if it has not tripped.

    The record holds ``tau`` (the prior's Kendall tau with the study's results),
    ``results`` (how many there were) and ``threshold``.

    Example:
        >>> import optuna
        >>> guard_of(optuna.create_study()) is None
        True
    """
    record = study._storage.get_study_system_attrs(study._study_id).get(GUARD_ATTR)
    return dict(record) if isinstance(record, dict) else None


def say_no_model(study: Study, why: str, instead: str) -> None:
    """Say, and record on ``study``, why no model serves it, unless it was already or it is a dry run.

    The first of the study's samplers, in any process, to record it says it: the meta
    sampler does so at a trial's ask, which the engine's workers make in turn (under the
    study's ask lock). A storage that cannot be read or written here counts as not recorded
    (the note is then said by this sampler rather than by none).

    Args:
        study: The study no meta-model serves.
        why: Why (``resolve_with_reason``'s reason).
        instead: The name of the sampler that samples every trial instead.
    """
    try:
        attrs = study._storage.get_study_system_attrs(study._study_id)
        if NO_MODEL_ATTR in attrs or attrs.get(DRY_RUN_ATTR):
            return
        study._storage.set_study_system_attr(study._study_id, NO_MODEL_ATTR, why)
    except Exception:  # a storage hiccup must not stop an ask over a note
        _log.debug("could not read or record on the study why no meta-model serves it", exc_info=True)
    _log.warning(
        "meta-learner: %s; %s samples every trial instead (the meta sampler runs cold, without a meta-model)",
        why,
        instead,
    )


def proposals_of(
    trials: Sequence[FrozenTrial], direction: StudyDirection | None = None
) -> list[dict[str, Any]]:
    """The meta proposals recorded on ``trials``, each with its trial's outcome.

    Each entry is the proposal (``params``, ``predicted``, ``uncertainty``, ``sources``)
    plus ``trial_number``, ``state``, ``value`` and, with ``direction``, ``rank``: the
    trial's place among the complete trials (1 = best; ``None`` if it did not complete).
    """
    complete = [v for t in trials if t.state == TrialState.COMPLETE and (v := _value(t)) is not None]
    reverse = direction == StudyDirection.MAXIMIZE
    ordered = sorted(complete, reverse=reverse)
    out = []
    for t in _proposed(trials):
        record = t.system_attrs.get(PROPOSAL_ATTR)
        if isinstance(record, dict):
            entry = {k: v for k, v in record.items() if k != UNITS_KEY}
            entry["trial_number"] = t.number
            entry["state"] = t.state.name.lower()
            value = entry["value"] = _value(t)
            if direction is not None:
                done = t.state == TrialState.COMPLETE and value is not None
                entry["rank"] = ordered.index(value) + 1 if done and value is not None else None
            out.append(entry)
    return out


def _value(trial: FrozenTrial) -> float | None:
    """The trial's value; ``None`` for none, or for several (a multi-objective study has no proposals)."""
    values = trial.values
    return float(values[0]) if values is not None and len(values) == 1 else None


def _proposed(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that ran a proposal; one that was run again (interrupted, lost) gives way to its retry."""
    marked = [t for t in trials if isinstance(t.system_attrs.get(PROPOSAL_ATTR), dict)]
    again = {t.system_attrs[PROPOSAL_ATTR].get(RETRY_KEY) for t in marked}
    return [t for t in marked if t.number not in again]
