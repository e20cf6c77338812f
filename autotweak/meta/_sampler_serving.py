"""What ``MetaSampler`` keeps of a trial it serves a proposal to, and how it compares values.

A study is known by its storage object and id; a trial ran a proposal when it holds
each proposed value, and a value is served only where it fits the trial's distribution.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.study import Study

from autotweak.meta._propose import Proposal

__all__ = ["Serving", "StudyKey", "fits_distribution", "ran_proposal", "study_key"]


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
