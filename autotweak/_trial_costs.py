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

from autotweak._money import usd_per_hour

__all__ = [
    "BASE_ATTR",
    "COST_ATTR",
    "COST_METRIC",
    "ESTIMATE_ATTR",
    "RECORD_PREFIX",
    "TRIAL_COSTS_ATTR",
    "estimate_note",
    "estimate_words",
    "merged_estimate",
    "read_estimate",
    "spot_dollars",
    "trial_dollars",
]

COST_ATTR = "autotweak.cost_usd"  # on a trial: its dollars; on the study: all instances' dollars
TRIAL_COSTS_ATTR = "autotweak.trial_costs_usd"  # on the study: {trial number: dollars}
COST_METRIC = "cost_usd"  # a trial's dollars on its record, and the study's on its parent run
# On the study: [instances, dollars per hour]: how many of its instances were billed at an upper
# bound of their price (their price tag was never read), and the highest such bound.
ESTIMATE_ATTR = "autotweak.cost_estimate"
# Each spot launcher's own bill: {"usd", "at", "every", "open"} (see autotweak.aws._leftovers).
RECORD_PREFIX = "autotweak.launcher."
# On the study: what sessions without a launcher record (older autotweak) cost. The study's cost
# is this plus every launcher record's dollars, so launchers running at once each count theirs.
BASE_ATTR = "autotweak.cost_base_usd"


def spot_dollars(study_attrs: Mapping[str, Any], *, without: str | None = None) -> float | None:
    """What the study's instances cost: :data:`BASE_ATTR` plus each launcher's record.

    A study no launcher with records ran since :data:`BASE_ATTR` came (older autotweak) holds
    its cost in :data:`COST_ATTR` only; None where neither is there. ``without`` leaves that
    launcher's record out.

    Example:
        >>> attrs = {BASE_ATTR: 1.0, RECORD_PREFIX + "a": {"usd": 0.5}, RECORD_PREFIX + "b": {"usd": 0.25}}
        >>> spot_dollars(attrs), spot_dollars(attrs, without="a"), spot_dollars({COST_ATTR: 2.0})
        (1.75, 1.25, 2.0)
    """
    if BASE_ATTR not in study_attrs:
        value = study_attrs.get(COST_ATTR)
        return None if value is None else float(value)
    total = float(study_attrs[BASE_ATTR])
    for key, record in study_attrs.items():
        if key.startswith(RECORD_PREFIX) and key != RECORD_PREFIX + (without or ""):
            total += _record_usd(record)
    return total


def _record_usd(record: Any) -> float:
    try:
        return float(record["usd"])
    except (TypeError, ValueError, KeyError):
        return 0.0


def trial_dollars(study_attrs: Mapping[str, Any], trials: Iterable[FrozenTrial]) -> dict[int, float]:
    """Dollars per trial number: each trial's own attr, else the launcher's map on the study."""
    costs = {int(k): float(v) for k, v in dict(study_attrs.get(TRIAL_COSTS_ATTR) or {}).items()}
    for trial in trials:
        if COST_ATTR in trial.user_attrs:
            costs[trial.number] = float(trial.user_attrs[COST_ATTR])
    return costs


def estimate_note(instances: int, at_most: float) -> str:
    """Words that say a cost includes instances billed at an upper bound of their price; else nothing.

    Example:
        >>> estimate_note(2, 0.1234567)
        ' (includes 2 instance(s) priced at most $0.1235/h: their price was never read)'
    """
    return f" (includes {estimate_words(instances, at_most)})" if instances > 0 else ""


def estimate_words(instances: int, at_most: float) -> str:
    """What :func:`estimate_note` says inside its brackets."""
    return f"{instances} instance(s) priced at most {usd_per_hour(at_most)}: their price was never read"


def merged_estimate(recorded: Any, bounds: Iterable[float]) -> tuple[int, float]:
    """The study's :data:`ESTIMATE_ATTR` (``recorded``, maybe absent) with this session's ``bounds`` added.

    Example:
        >>> merged_estimate([1, 0.5], [0.1, 0.2]), merged_estimate(None, [])
        ((3, 0.5), (0, 0.0))
    """
    instances, at_most = read_estimate(recorded)
    listed = list(bounds)
    return instances + len(listed), max([at_most, *listed])


def read_estimate(recorded: Any) -> tuple[int, float]:
    """``(instances, highest bound)`` from the study's :data:`ESTIMATE_ATTR`; none where unreadable."""
    try:
        instances, at_most = recorded
        return int(instances), float(at_most)
    except (TypeError, ValueError):
        return 0, 0.0
