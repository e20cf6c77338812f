"""What ``MetaSampler`` records on a study and its trials, and how to read it back.

A trial that ran a proposal carries :data:`PROPOSAL_ATTR` (a system attribute); a tripped
negative-transfer guard is recorded on the study as :data:`GUARD_ATTR`; at the end of a
study the engine stores every proposal with its outcome as :data:`PROPOSALS_ATTR`.

Example:
    >>> import optuna
    >>> study = optuna.create_study()
    >>> guard_of(study) is None, proposals_of(study.trials)
    (True, [])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "GUARD_ATTR",
    "PROPOSALS_ATTR",
    "PROPOSAL_ATTR",
    "RETRY_KEY",
    "UNITS_KEY",
    "guard_of",
    "proposals_of",
]

PROPOSAL_ATTR = "autotweak.meta_proposal"
GUARD_ATTR = "autotweak.meta_guard"
PROPOSALS_ATTR = "autotweak.meta_proposals"
RETRY_KEY = "retry_of"  # in the proposal record that a trial run again carries: the trial it re-runs
UNITS_KEY = "units"


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
