"""The checks across the spec's fields, run when an :class:`Experiment` is built."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from autotweak._config import base_values, flat_config, nested_config
from autotweak._locations import redact, storage_problem, tracking_problem
from autotweak._validation import Problems, Where, bad_name
from autotweak.exceptions import SpecError
from autotweak.space import CategoricalParam, FixedParam, FloatParam, IntParam
from autotweak.space import Param as SpaceParam
from autotweak.spec._components import check_components

if TYPE_CHECKING:
    from autotweak.spec._experiment import Experiment

__all__ = ["STORED_SOURCE", "check_across"]

STORED_SOURCE = "<study "  # the source of a spec read back from a study (f"<study {name}>")


def check_across(experiment: Experiment, where: Where) -> None:
    """The checks across fields, each on its own: every problem is said at once.

    Raises:
        SpecError: Naming every field whose check failed.
    """
    problems = Problems()
    checks = ((_check_stores, where), (_check_components, where), (_check_base, where.child("base")))
    for check, at in (*checks, (_check_compute, where)):
        with problems.collect():
            check(experiment, at)
    problems.raise_any(experiment.source)


def _check_components(experiment: Experiment, where: Where) -> None:
    check_components(experiment, where, stored=(experiment.source or "").startswith(STORED_SOURCE))


def _check_base(experiment: Experiment, where: Where) -> None:
    """The base config must be one config, and a valid point of the space to run as trial 0."""
    # A stored study's spec was checked when the study was created; one created before
    # these rules still runs: a value given twice keeps the last, as it did then, and a base
    # outside its space simply has no baseline trial.
    stored = (experiment.source or "").startswith(STORED_SOURCE)
    if not stored:
        try:
            nested_config(experiment.base)
        except ValueError as exc:
            raise where.fail(f"must give each value once, as a dotted name or nested ({exc})") from None
    if stored:
        return
    for key in experiment.base:  # each is an MLflow param of the study's run, base.<key>
        rule = bad_name(key)
        if rule is not None:
            raise where.child(key).fail(rule, key)
    for name in flat_config(nested_config(experiment.base)):  # each is an MLflow param of every trial
        rule = bad_name(name)
        if rule is not None:
            raise where.child(name).fail(rule, name)
    space = experiment.space
    _check_nesting(nested_config(experiment.base), space.names, where)
    given = base_values(experiment.base, space.names)
    active = space.active(given)  # a fixed parameter's value there is the space's
    for name in active:
        param, value = space[name], given.get(name)
        if isinstance(param, FixedParam) and name in given and not param.contains(value):
            raise SpecError(
                f"is fixed to {param.value!r} by the tweaks, got {value!r}: every trial would run "
                f"{param.value!r}. Remove it from base, set it in the tweaks (tweaks.params.{name}), "
                f"or drop it from them (tweaks.drop: [{name}]) to keep the base value.",
                source=where.source,
                field=where.child(name).field,
            )
    if not experiment.baseline:
        return
    for name, value in active.items():
        param = space[name]
        if not isinstance(param, FixedParam) and not param.contains(value):
            raise SpecError(
                f"must be {_allowed(param)}, got {value!r}; the base config runs as trial 0 "
                "(set 'baseline: false' to skip it).",
                source=where.source,
                field=where.child(name).field,
            )


def _check_compute(experiment: Experiment, where: Where) -> None:
    """``budget.compute`` counts full trainings of ``metric.steps`` steps: it needs them."""
    if experiment.budget.compute is not None and experiment.metric.steps is None:
        raise where.child("metric.steps").fail(
            "must be set when budget.compute is set "
            "(compute is counted in full trainings of that many steps)",
            None,
        )


def _check_stores(experiment: Experiment, where: Where) -> None:
    """Store URLs that cannot work (a path, ./mlruns, a driver not installed) fail before any compute."""
    for key, url, problem in (
        ("storage", experiment.storage, storage_problem),
        ("tracking_uri", experiment.tracking_uri, tracking_problem),
    ):
        rule = problem(url) if isinstance(url, str) and url.strip() else None
        if rule is not None:
            raise where.child(key).fail(rule, redact(url))  # type: ignore[arg-type]


def _check_nesting(base: Mapping[str, Any], names: Iterable[str], where: Where) -> None:
    """A tweak ``optim.lr`` needs ``base.optim``, if given, to be a mapping it can go inside."""
    for name in names:
        node: Any = base
        parts = name.split(".")
        for depth, part in enumerate(parts[:-1], start=1):
            if not isinstance(node, Mapping) or part not in node:
                break
            node = node[part]
            if not isinstance(node, Mapping):
                outer = ".".join(parts[:depth])
                raise where.child(outer).fail(
                    f"must be a mapping: the tweak '{name}' sets a value inside it (a trial's config "
                    f"would replace {node!r} by {{'{'.'.join(parts[depth:])}': ...}})",
                    node,
                )


def _allowed(param: SpaceParam) -> str:
    """What a base value of ``param`` may be, for an error message."""
    if isinstance(param, CategoricalParam):
        return f"one of the tweaks' choices {list(param.choices)}"
    if isinstance(param, IntParam):
        step = f" in steps of {param.step}" if param.step != 1 else ""
        return f"an integer within the tweaks' range [{param.low}, {param.high}]{step}"
    if isinstance(param, FloatParam):
        step = f" in steps of {param.step:g}" if param.step is not None else ""
        return f"within the tweaks' range [{param.low:g}, {param.high:g}]{step}"
    return repr(param.value)
