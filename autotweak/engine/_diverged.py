"""A reported value that says the trial diverged: NaN, or the infinity worst for the study's direction."""

from __future__ import annotations

import math

from optuna.study import StudyDirection

from autotweak._attrs import DIVERGED_RULE

__all__ = ["DIVERGED_RULE", "diverged"]


def diverged(value: float, direction: StudyDirection) -> str | None:
    """How ``value`` shows a diverged training (``"NaN"``, ``"+inf"``, ``"-inf"``), or ``None``.

    NaN, and the infinity that is the worst value for ``direction`` (``+inf`` when
    minimizing, ``-inf`` when maximizing): a training that reports them does not come back.
    The other infinity (``-inf`` when minimizing) reads as the best value: a pruner weighs it
    as it is, and the trial's result, if it stays infinite, fails the trial as not finite.
    """
    if math.isnan(value):
        return "NaN"
    worst = math.inf if direction == StudyDirection.MINIMIZE else -math.inf
    return ("+inf" if worst > 0 else "-inf") if value == worst else None
