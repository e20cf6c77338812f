"""Dollars per trial, as a spot study keeps them: written by its launcher, read by reports and catch-ups.

A spot session's close costs each finished trial (its run time at the mean price of the
study's instances) and keeps the costs on the study (:data:`TRIAL_COSTS_ATTR`); a trial may
hold its own (:data:`COST_ATTR`), which wins.

Example:
    >>> import optuna
    >>> study = optuna.create_study()
    >>> study.optimize(lambda t: 1.0, n_trials=2)
    >>> study.set_user_attr(TRIAL_COSTS_ATTR, {"0": 0.25, "1": 0.5})
    >>> trial_dollars(study.user_attrs, study.trials)
    {0: 0.25, 1: 0.5}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from optuna.trial import FrozenTrial

__all__ = ["COST_ATTR", "COST_METRIC", "TRIAL_COSTS_ATTR", "trial_dollars"]

COST_ATTR = "autotweak.cost_usd"  # on a trial: its dollars; on the study: all instances' dollars
TRIAL_COSTS_ATTR = "autotweak.trial_costs_usd"  # on the study: {trial number: dollars}
COST_METRIC = "cost_usd"  # a trial's dollars on its record, and the study's on its parent run


def trial_dollars(study_attrs: Mapping[str, Any], trials: Iterable[FrozenTrial]) -> dict[int, float]:
    """Dollars per trial number: each trial's own attr, else the launcher's map on the study."""
    costs = {int(k): float(v) for k, v in dict(study_attrs.get(TRIAL_COSTS_ATTR) or {}).items()}
    for trial in trials:
        if COST_ATTR in trial.user_attrs:
            costs[trial.number] = float(trial.user_attrs[COST_ATTR])
    return costs
