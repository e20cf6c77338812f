"""Samplers and pruners by name (dicts from name to factory, never if/elif chains), and their check.

A new component is one entry. Factories receive the search space and the metric, since
some Optuna components need them (the grid's values, Hyperband's ``max_resource``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler

from autotweak._attrs import DRY_RUN_ATTR
from autotweak._imports import require
from autotweak._quiet import quiet_optuna
from autotweak._validation import Where, as_str, closest, is_integer
from autotweak.exceptions import SpecError
from autotweak.space import SearchSpace
from autotweak.spec._objective import import_objective
from autotweak.spec._parts import Component, Metric

if TYPE_CHECKING:
    from autotweak.spec._experiment import Experiment

__all__ = ["PRUNERS", "SAMPLERS", "build_pruner", "build_sampler", "check_components", "component_meta"]

SamplerFactory = Callable[[SearchSpace, "int | None", dict[str, Any]], BaseSampler]
PrunerFactory = Callable[[Metric, dict[str, Any]], BasePruner]
_T = TypeVar("_T")


def _construct(
    cls: Callable[..., _T],
    args: dict[str, Any],
    *,
    given: Mapping[str, Any] | None = None,
    own: tuple[str, ...] = (),
) -> _T:
    """``cls(**given, **args)``; an argument of ``args`` that ``cls`` does not take says the nearest it does.

    Args:
        cls: The component's class; its signature lists the arguments it takes.
        args: The spec's arguments.
        given: The arguments the factory passes itself (never suggested).
        own: The arguments the factory takes itself before calling ``cls`` (suggested too).

    Raises:
        TypeError: Optuna's, with "did you mean 'n_startup_trials'?" when a near name exists.
    """
    given = dict(given or {})
    try:
        return cls(**given, **args)
    except TypeError as exc:
        params = inspect.signature(cls).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            raise
        unknown = next((key for key in args if key not in params and f"'{key}'" in str(exc)), None)
        options = [*(name for name in params if name not in given), *own]
        hint = None if unknown is None else closest(unknown, options)
        if hint is None:
            raise
        raise TypeError(f"{exc}; did you mean '{hint}'?") from exc


def _tpe(space: SearchSpace, seed: int | None, args: dict[str, Any]) -> BaseSampler:
    return _construct(optuna.samplers.TPESampler, args, given={"seed": seed})


def _random(space: SearchSpace, seed: int | None, args: dict[str, Any]) -> BaseSampler:
    return _construct(optuna.samplers.RandomSampler, args, given={"seed": seed})


class GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler, minus its ``study.stop()`` in ``after_trial``.

    ``study.stop()`` only works inside ``Study.optimize``; autotweak's loop asks
    :meth:`is_exhausted` before each trial instead (see ``BudgetView``).
    """

    def after_trial(self, study: optuna.Study, trial: Any, state: Any, values: Any) -> None:
        return None


def _grid(space: SearchSpace, seed: int | None, args: dict[str, Any]) -> BaseSampler:
    conditional = [p.name for p in space.params if p.when is not None]
    if conditional:  # a grid has no cell for a parameter that only some of its points have
        raise SpecError(
            f"must not be 'grid' for a space with conditional parameters ({', '.join(conditional)}, "
            f"which exist{'s' if len(conditional) == 1 else ''} only with some values of "
            f"{'its parent' if len(conditional) == 1 else 'their parents'}: tpe, random, qmc, cmaes or gp "
            "search such a space), got 'grid'.",
            field="sampler",
        )
    n_points = args.pop("n_points", 4)
    if not is_integer(n_points) or n_points < 1:
        raise ValueError(f"n_points must be an integer >= 1, got {n_points!r}")
    return _construct(
        GridSampler, args, given={"search_space": space.grid(n_points), "seed": seed}, own=("n_points",)
    )


def _qmc(space: SearchSpace, seed: int | None, args: dict[str, Any]) -> BaseSampler:
    args.setdefault("scramble", True)
    args.setdefault("warn_asynchronous_seeding", False)
    args.setdefault("warn_independent_sampling", False)  # a conditional parameter, at every trial
    return _construct(optuna.samplers.QMCSampler, args, given={"seed": seed})


def _cmaes(space: SearchSpace, seed: int | None, args: dict[str, Any]) -> BaseSampler:
    require("cmaes", extra="cmaes", feature="the 'cmaes' sampler")
    args.setdefault("warn_independent_sampling", False)
    return _construct(optuna.samplers.CmaEsSampler, args, given={"seed": seed})


def _gp(space: SearchSpace, seed: int | None, args: dict[str, Any]) -> BaseSampler:
    require("torch", extra="torch", feature="the 'gp' sampler")
    args.setdefault("warn_independent_sampling", False)
    return _construct(optuna.samplers.GPSampler, args, given={"seed": seed})


def _meta(space: SearchSpace, seed: int | None, args: dict[str, Any]) -> BaseSampler:
    """The meta-learner's sampler around a base sampler of this registry (TPE by default)."""
    from autotweak.meta import MetaSampler
    from autotweak.meta._library import resolve_with_reason

    base = args.pop("base", "tpe")
    if base not in SAMPLERS or base in ("meta", "grid"):
        # grid: Optuna's grid takes a point for every trial, a proposal's too, which never runs it
        raise SpecError(
            f"must name a sampler of {sorted(set(SAMPLERS) - {'meta', 'grid'})} (not grid, whose "
            f"points the proposals would use up), got {base!r}.",
            field="sampler.args.base",
        )
    base_sampler = SAMPLERS[base](space, seed, dict(args.pop("base_args", {})))
    model, why_no_model = resolve_with_reason(args.pop("model", "auto"), space)
    descriptor = args.pop("descriptor", None)
    if isinstance(descriptor, str):
        descriptor = import_objective(descriptor, Where("sampler.args.descriptor"))()
    if descriptor is not None and not isinstance(descriptor, Mapping):
        raise SpecError(
            f"must be a mapping or 'module:function', got {descriptor!r}.", field="sampler.args.descriptor"
        )
    given = {
        "model": model,
        "base": base_sampler,
        "seed": seed,
        "descriptor": descriptor,
        "why_no_model": why_no_model,
    }
    return _construct(MetaSampler, args, given=given, own=("base", "base_args", "model", "descriptor"))


SAMPLERS: dict[str, SamplerFactory] = {
    "tpe": _tpe,
    "random": _random,
    "grid": _grid,
    "qmc": _qmc,
    "cmaes": _cmaes,
    "gp": _gp,
    "meta": _meta,
}


def _median(metric: Metric, args: dict[str, Any]) -> BasePruner:
    return _construct(optuna.pruners.MedianPruner, args)


def _percentile(metric: Metric, args: dict[str, Any]) -> BasePruner:
    args.setdefault("percentile", 25.0)
    return _construct(optuna.pruners.PercentilePruner, args)


def _successive_halving(metric: Metric, args: dict[str, Any]) -> BasePruner:
    # Optuna's "auto" min_resource is estimated by each process from the trials it has seen
    # completed, so workers could disagree on the rungs; the same rule on metric.steps cannot.
    if metric.steps is not None:
        args.setdefault("min_resource", max(metric.steps // 100, 1))
    _check_resources(args)
    return _construct(optuna.pruners.SuccessiveHalvingPruner, args)


def _hyperband(metric: Metric, args: dict[str, Any]) -> BasePruner:
    # A fixed max_resource fixes the brackets before the first trial completes, in every
    # process alike ("auto" waits for a completed trial, and each process for its own).
    if metric.steps is not None:
        args.setdefault("max_resource", metric.steps)
    _check_resources(args)
    return _construct(optuna.pruners.HyperbandPruner, args)


def _check_resources(args: dict[str, Any]) -> None:
    """Optuna checks these only when a trial first reports; check them before any compute."""
    for key in ("min_resource", "max_resource"):
        value = args.get(key, "auto")
        if value != "auto" and (not is_integer(value) or value < 1):
            raise ValueError(f"{key} must be 'auto' or an integer >= 1, got {value!r}")
    low, high = args.get("min_resource", "auto"), args.get("max_resource", "auto")
    if is_integer(low) and is_integer(high) and low > high:
        raise ValueError(f"min_resource must be <= max_resource, got {low} > {high}")


def _learned(metric: Metric, args: dict[str, Any]) -> BasePruner:
    """The learned-curve pruner; its model defaults to the shipped one that fits the trial's space."""
    from autotweak.curves import LearnedCurvePruner

    if metric.steps is not None:
        args.setdefault("n_steps", metric.steps)
    return _construct(LearnedCurvePruner, args)


def _none(metric: Metric, args: dict[str, Any]) -> BasePruner:
    return _construct(optuna.pruners.NopPruner, args)


PRUNERS: dict[str, PrunerFactory] = {
    "median": _median,
    "percentile": _percentile,
    "successive_halving": _successive_halving,
    "hyperband": _hyperband,
    "learned": _learned,
    "none": _none,
}


def build_sampler(component: Component, space: SearchSpace, seed: int | None) -> BaseSampler:
    """Instantiate the sampler named by ``component`` (errors surface as they are).

    Optuna's notes that a sampler is experimental (qmc) are not repeated at each of the
    several times a study builds its sampler.
    """
    with quiet_optuna():
        return SAMPLERS[component.name](space, seed, dict(component.args))


def build_pruner(component: Component, metric: Metric) -> BasePruner:
    """Instantiate the pruner named by ``component``."""
    return PRUNERS[component.name](metric, dict(component.args))


def component_meta(kind: str, component: Component, instance: object) -> dict[str, Any]:
    """What a component is: its registry name, arguments and class (logged, and compared on resume)."""
    own: Mapping[str, Any] | None = getattr(instance, "meta", None)
    if isinstance(own, Mapping):
        return {"kind": kind, **own}
    cls = type(instance)
    return {
        "kind": kind,
        "name": component.name,
        "args": dict(component.args),
        "class": f"{cls.__module__}.{cls.__qualname__}",
    }


def check_components(experiment: Experiment, where: Where, *, stored: bool = False) -> None:
    """Build the sampler and pruner once and run them, so that bad names or arguments fail before compute.

    ``stored``: the spec is read back from a study, whose pruner model is not checked again
    against its space (a study of before that rule resumes).
    """
    checks: list[tuple[str, Component, Callable[[], object], dict[str, Any]]] = [
        (
            "sampler",
            experiment.sampler,
            lambda: build_sampler(experiment.sampler, experiment.space, 0),
            SAMPLERS,
        ),
        ("pruner", experiment.pruner, lambda: _pruner_for(experiment, stored), PRUNERS),
    ]
    built: dict[str, Any] = {}
    for key, component, build, registry in checks:
        as_str(component.name, where.child(key).child("name"), choices=tuple(registry))
        try:
            built[key] = build()
        except SpecError as exc:
            raise SpecError(exc.rule, source=where.source, field=exc.field or f"{key}.args") from None
        except (TypeError, ValueError) as exc:
            raise _bad_args(where, key, component, exc) from None
    try:
        _try_components(experiment, built["sampler"], built["pruner"])
    except _ComponentFailed as failed:
        raise _bad_args(where, failed.key, getattr(experiment, failed.key), failed.cause) from None


def _bad_args(where: Where, key: str, component: Component, exc: Exception) -> SpecError:
    said = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"  # ValueError: a rule
    rule = f"must be valid arguments of the '{component.name}' {key} ({said})"
    return where.child(key).child("args").fail(rule, dict(component.args))


class _ComponentFailed(Exception):
    """The sampler or the pruner (``key``) raised ``cause`` in a trial run."""

    def __init__(self, key: str, cause: Exception) -> None:
        super().__init__(key, cause)
        self.key, self.cause = key, cause


def _try_components(experiment: Experiment, sampler: Any, pruner: Any, n_trials: int = 3) -> None:
    """Run a few trials of an in-memory study with the sampler and the pruner.

    Arguments a constructor takes but cannot use (``n_startup_trials: "x"``, Hyperband's
    ``reduction_factor: 1``) then fail here, not at a study's first ask.

    Raises:
        _ComponentFailed: The component that raised, and its exception.
    """
    rng = np.random.default_rng(0)
    steps = min(experiment.metric.steps or 0, 3)
    with quiet_optuna():
        study = optuna.create_study(
            sampler=sampler, pruner=pruner, direction=experiment.metric.direction, storage=None
        )
    study._storage.set_study_system_attr(study._study_id, DRY_RUN_ATTR, True)  # its trials never run
    for _ in range(n_trials):
        try:
            trial = study.ask()
            experiment.space.suggest(trial)
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise _ComponentFailed("sampler", exc) from exc
        try:
            for step in range(1, steps + 1):
                trial.report(float(rng.random()), step)
                trial.should_prune()
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise _ComponentFailed("pruner", exc) from exc
        study.tell(trial, float(rng.random()))


def _pruner_for(experiment: Experiment, stored: bool) -> object:
    """The study's pruner, its given model (if any) checked against the space."""
    pruner = build_pruner(experiment.pruner, experiment.metric)
    check_space = getattr(pruner, "check_space", None)
    if check_space is not None and not stored:
        check_space(experiment.space)
    return pruner
