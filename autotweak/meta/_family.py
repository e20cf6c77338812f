"""The search space of a family table: the library's when the configs fit it, else inferred.

A long-format table of one model family (BENCHMARK.md) holds configs but no space. When its
hyperparameters are those of a library space (``hgb``, ``mlp``) and every config lies in it,
that space is used, so the histories line up with the shipped meta-model; otherwise a space
is inferred from the configs.

Example:
    >>> space, family = family_space("mine", ["lr"], {0: {"lr": 1e-4}, 1: {"lr": 0.1}})
    >>> family is None, space.to_dict()
    (True, {'lr': {'type': 'float', 'low': 0.0001, 'high': 0.1, 'log': True}})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autotweak.exceptions import AutotweakError
from autotweak.meta._histories import HistoryError
from autotweak.space import CategoricalParam, FixedParam, FloatParam, IntParam, Param, SearchSpace, load_space

__all__ = ["LIBRARY_FAMILIES", "family_space", "infer_space", "misfit"]

LIBRARY_FAMILIES = ("hgb", "mlp")
LOG_RATIO = 100.0

Configs = Mapping[Any, Mapping[str, Any]]


def family_space(name: str, hyperparameters: list[str], configs: Configs) -> tuple[SearchSpace, str | None]:
    """The library space the configs fit, and its family name; else an inferred space and ``None``.

    A table named after a library family (``name == "hgb"``) must fit that family's space.

    Raises:
        HistoryError: If a table named after a library family does not fit its space, or
            no space can be inferred.
    """
    named = name if name in LIBRARY_FAMILIES else None
    for family in [named] if named else LIBRARY_FAMILIES:
        space = load_space(family)
        problem = misfit(space, hyperparameters, configs)
        if problem is None:
            return space, family
        if named:
            raise HistoryError(f"a {family} file must hold {family}'s search space: {problem}")
    return infer_space(name, hyperparameters, configs), None


def misfit(space: SearchSpace, hyperparameters: list[str], configs: Configs) -> str | None:
    """Why the configs do not fit ``space`` (``None`` if they do)."""
    if sorted(hyperparameters) != sorted(space.names):
        return f"hyperparameter columns must be {space.names}, got {hyperparameters}."
    for config_id, config in configs.items():
        wrong = space.invalid(config)
        if wrong:
            shown = {name: config[name] for name in wrong}
            return f"config values must lie in the space, got {shown} for config_id {config_id}."
    return None


def infer_space(name: str, hyperparameters: list[str], configs: Configs) -> SearchSpace:
    """A space from the configs: numbers -> ranges, other values -> categorical.

    A numeric range is on a log scale when ``max / min > 100`` and ``min > 0``; a column
    with one value is fixed.

    Raises:
        HistoryError: If the configs make no valid space.

    Example:
        >>> infer_space("x", ["lr"], {0: {"lr": 1e-4}, 1: {"lr": 0.1}}).to_dict()
        {'lr': {'type': 'float', 'low': 0.0001, 'high': 0.1, 'log': True}}
    """
    params = [
        _infer_param(column, [config[column] for config in configs.values()]) for column in hyperparameters
    ]
    try:
        return SearchSpace(tuple(params), name=name)
    except AutotweakError as exc:
        raise HistoryError(f"no search space can be inferred for {name!r}: {exc}") from None


def _infer_param(column: str, values: list[Any]) -> Param:
    distinct = sorted(set(values), key=repr)
    if len(distinct) == 1:
        return FixedParam(column, value=distinct[0])
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        low, high = min(values), max(values)
        log = bool(low > 0 and high / low > LOG_RATIO)
        if all(isinstance(v, int) for v in values):
            return IntParam(column, low=int(low), high=int(high), log=log)
        return FloatParam(column, low=float(low), high=float(high), log=log)
    return CategoricalParam(column, choices=tuple(sorted(distinct, key=str)))
