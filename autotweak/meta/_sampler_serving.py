"""What ``MetaSampler`` keeps of a trial it serves a proposal to, and how it compares values.

A study is known by its storage object and id; a trial ran a proposal when it holds
each proposed value, and a value is served only where it fits the trial's distribution.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from autotweak.meta._model import MetaModel
from autotweak.meta._propose import Proposal
from autotweak.meta._records import CLAIM_ATTR, PROPOSAL_ATTR, UNITS_KEY

__all__ = [
    "Serving",
    "StudyKey",
    "candidates_inside",
    "claimed",
    "fits_distribution",
    "ran_proposal",
    "study_key",
    "trial_point",
    "unit_point",
]


@dataclass
class Serving:
    """A trial's proposal while the trial runs."""

    proposal: Proposal
    units: list[float]  # its unit point in the model's space
    dropped: bool = False  # a value did not fit the trial (or it set another): the trial is no proposal
    recorded: bool = False  # the trial ran it whole, and its record is in the storage


StudyKey = tuple[int, int]


def study_key(study: Study) -> StudyKey:
    """Which study: its storage object and its id there (two in-memory storages both start at 0)."""
    return id(study._storage), study._study_id


def claimed(trials: Sequence[FrozenTrial]) -> dict[int, list[float]]:
    """The proposals running trials were given and have not stored whole yet, by trial id."""
    return {
        t._trial_id: [float(u) for u in t.system_attrs[CLAIM_ATTR]]
        for t in trials
        if t.state == TrialState.RUNNING
        and isinstance(t.system_attrs.get(CLAIM_ATTR), list)
        and PROPOSAL_ATTR not in t.system_attrs
    }


def ran_proposal(params: Mapping[str, Any], proposed: Mapping[str, Any], names: Sequence[str]) -> bool:
    """Whether ``params`` hold the proposed value of each of ``names``."""
    return all(name in params and name in proposed and _same(params[name], proposed[name]) for name in names)


def _same(value: Any, proposed: Any) -> bool:
    """Whether a trial's value is the proposed one (a float as stored may differ in the last bits)."""
    if isinstance(value, float) and isinstance(proposed, int | float) and not isinstance(proposed, bool):
        return math.isclose(value, proposed, rel_tol=1e-9, abs_tol=1e-12)
    return type(value) is type(proposed) and bool(value == proposed)


def fits_distribution(distribution: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` is a valid value of ``distribution`` (same kind, in range)."""
    if isinstance(distribution, IntDistribution) and not isinstance(value, int):
        return False
    if isinstance(distribution, FloatDistribution) and not isinstance(value, float):
        return False  # an int parameter of the model served to suggest_float would come back a float
    try:
        return bool(distribution._contains(distribution.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


def candidates_inside(model: MetaModel, known: Mapping[str, BaseDistribution]) -> NDArray[np.bool_]:
    """Which of the model's candidates fit every one of the ``known`` distributions."""
    configs = model.candidates
    inside = [all(fits_distribution(d, config[name]) for name, d in known.items()) for config in configs]
    return np.array(inside, dtype=np.bool_)


def trial_point(model: MetaModel | None, names: Sequence[str], trial: FrozenTrial) -> list[float] | None:
    """The unit point of the config the trial ran (the candidate's own, if it ran a proposal).

    A running trial is recorded as a proposal just before its last value is stored: from
    the record on, it is that candidate, so that another worker never proposes it again.
    """
    record = trial.system_attrs.get(PROPOSAL_ATTR)
    if isinstance(record, dict) and UNITS_KEY in record and isinstance(record.get("params"), dict):
        stored = [name for name in names if name in trial.params]
        whole = len(stored) == len(names) or trial.state == TrialState.RUNNING
        if whole and ran_proposal(trial.params, record["params"], stored):
            return [float(u) for u in record[UNITS_KEY]]
    return unit_point(model, names, trial.params)


def unit_point(
    model: MetaModel | None, names: Sequence[str], params: Mapping[str, Any]
) -> list[float] | None:
    """A config's unit point in the model's space, if it sets every parameter validly."""
    if model is None or not all(name in params for name in names):
        return None
    space = model.space
    if space.invalid({name: params[name] for name in names}):
        return None
    return [0.5 if u is None else u for u in space.to_unit(params)]
