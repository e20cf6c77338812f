"""The experiment spec: one YAML file, or the same thing as Python objects."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from autotweak._config import base_values, merge_config, without
from autotweak._locations import redact
from autotweak._validation import Where, as_mapping, is_integer
from autotweak._yaml import read_yaml
from autotweak.exceptions import SpecError
from autotweak.space import SearchSpace
from autotweak.spec._checks import check_across
from autotweak.spec._fields import OBJECTIVE_RULE, check_study_name, parse_fields
from autotweak.spec._objective import check_signature, import_objective
from autotweak.spec._parts import Budget, Component, Execution, Metric

__all__ = ["Experiment", "load_experiment"]

MAX_SEED = 2**31 - 1  # worker i seeds with seed + i, and NumPy takes seeds below 2**32


@dataclass(frozen=True, kw_only=True)
class Experiment:
    """A declared experiment: what to run, what to tweak, what to optimize, how long.

    Attributes:
        name: Study name: the Optuna study and the MLflow experiment are named after it.
        objective: ``"package.module:function"`` or a function ``f(config, trial) -> float``;
            ``None`` for a study driven by the ask/tell :class:`~autotweak.Study` only.
        space: The tweaks, a :class:`~autotweak.space.SearchSpace`.
        metric: Name and direction of the value the objective returns.
        base: The base config; each trial's config is the base updated with the tweaks (see
            :meth:`trial_config`).
        budget: Trials, wall time and compute limits.
        sampler: Sampler by registry name with arguments (``meta`` by default: warm-started from
            a meta-model that fits the space when one is found, otherwise plain TPE).
        pruner: Pruner by registry name with arguments (``learned`` by default: the curve model
            that fits the space when one is found, otherwise Optuna's median rule, in both
            cases not before a quarter of ``metric.steps`` and 5 completed trials).
        seed: Seed of the sampler: in the study's first session worker ``i`` uses ``seed + i``;
            a resumed study and a joining worker draw new streams derived from it.
        execution: Worker processes and stale-trial detection.
        storage: Optuna storage URL; the embedded default when ``None``.
        tracking_uri: MLflow tracking URI; the embedded default when ``None``.
        tags: Free-form tags, logged on the study's MLflow runs.
        baseline: Run the base config as the first trial, so results have a reference.
        register_model: When the study ends and its best trial logged a model
            (``trial.log_model``), register it in the MLflow Model Registry: under the
            study's name (``True``), under this name (a string), or not at all (``False``).
        description: Free text, logged with the study.
        source: The spec file it was read from, if any.
    """

    name: str
    space: SearchSpace
    metric: Metric
    objective: str | Callable[..., Any] | None = None
    base: Mapping[str, Any] = field(default_factory=dict)
    budget: Budget = field(default_factory=Budget)
    sampler: Component = field(default_factory=lambda: Component("meta"))
    pruner: Component = field(default_factory=lambda: Component("learned"))
    seed: int | None = 0
    execution: Execution = field(default_factory=Execution)
    storage: str | None = None
    tracking_uri: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    baseline: bool = True
    register_model: bool | str = True
    description: str = ""
    source: str | None = None

    def __post_init__(self) -> None:
        where = Where(self.source)
        check_study_name(self.name, where.child("name"))  # also a name given to with_overrides
        if (
            self.objective is not None
            and not isinstance(self.objective, str)
            and not callable(self.objective)
        ):
            raise where.child("objective").fail(OBJECTIVE_RULE, self.objective)
        if self.seed is not None and not (is_integer(self.seed) and 0 <= self.seed <= MAX_SEED):
            raise where.child("seed").fail(f"must be an integer from 0 to {MAX_SEED}, or null", self.seed)
        check_across(self, where)

    # -- derived --------------------------------------------------------------------
    @property
    def objective_ref(self) -> str | None:
        """The objective as an entry point string, when it is one."""
        return self.objective if isinstance(self.objective, str) else None

    def resolve_objective(self) -> Callable[..., Any]:
        """The objective function (imported when given as an entry point)."""
        where = Where(self.source, "objective")
        if callable(self.objective):
            check_signature(self.objective, where)
            return self.objective
        if self.objective is None:
            raise Where(self.source, "objective").fail(
                "must be set to run trials with optimize() or a worker "
                "(only the ask/tell Study works without one)"
            )
        base_dir = Path(self.source).resolve().parent if self.source else None
        objective = import_objective(self.objective, where, base_dir=base_dir)
        check_signature(objective, where)
        return objective

    def base_trial(self) -> dict[str, Any] | None:
        """The base config's values of the tunable parameters, if it is a valid point."""
        if not self.baseline or not self.base:
            return None
        values = self.space.active(base_values(self.base, self.space.names))
        if self.space.invalid(values):
            return None
        return {p.name: values[p.name] for p in self.space.tunable if p.name in values}

    def trial_config(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A trial's full config from its tweaks ``params`` (Optuna's params, or the suggested ones).

        The base config updated with the active tweaks, fixed ones included. A conditional
        tweak whose condition ``params`` do not meet is left out, even where the base sets
        it, as it is of Optuna's params: the config holds only what the trial uses.

        Example:
            >>> from autotweak.space import load_space
            >>> exp = Experiment(
            ...     name="cnn", space=load_space("cnn"), metric=Metric("loss", "minimize"),
            ...     base={"optimizer": "sgd", "momentum": 0.9, "epochs": 3},
            ... )
            >>> exp.trial_config({"optimizer": "adamw", "lr": 0.01})
            {'optimizer': 'adamw', 'epochs': 3, 'lr': 0.01}
        """
        active = self.space.active(params)
        return merge_config(without(self.base, self.space.inactive(active)), active)

    def with_overrides(self, **changes: Any) -> Experiment:
        """A copy with some fields changed (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data (YAML-able): logged to MLflow and kept in the study.

        A store URL's password is hidden (``postgresql://me:***@db/optuna``): the records
        are read by everyone who can read the study, and a resume takes the URL again.
        """
        return {
            "name": self.name,
            "description": self.description,
            "objective": self.objective_ref
            or (None if self.objective is None else _callable_name(self.objective)),
            "base": dict(self.base),
            "tweaks": {"name": self.space.name, "params": self.space.to_dict()},
            "metric": {
                "name": self.metric.name,
                "direction": self.metric.direction,
                "steps": self.metric.steps,
            },
            "budget": {k: v for k, v in vars(self.budget).items() if v is not None},
            "sampler": self.sampler.to_dict(),
            "pruner": self.pruner.to_dict(),
            "seed": self.seed,
            "execution": dict(vars(self.execution)),
            "storage": None if self.storage is None else redact(self.storage),  # no password in records
            "tracking_uri": None if self.tracking_uri is None else redact(self.tracking_uri),
            "tags": dict(self.tags),
            "baseline": self.baseline,
            "register_model": self.register_model,
        }

    # -- parsing --------------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: Any, *, source: str | None = None, check_objective: bool = True) -> Experiment:
        """Validate and build an experiment from its mapping form.

        Every problem raises :class:`~autotweak.exceptions.SpecError` naming the file,
        the field and the rule, before any compute is spent.
        """
        where = Where(source)
        data = as_mapping(raw, where)
        # The ask/tell Study runs no objective: it may leave it out (optimize() says it is needed).
        needed = ("name", "tweaks", "metric") + (("objective",) if check_objective else ())
        try:
            experiment = cls(**parse_fields(data, where, needed), source=source)
        except SpecError as exc:
            if exc.source is None and source is not None:
                raise SpecError(exc.rule, source=source, field=exc.field) from None
            raise
        if check_objective and isinstance(experiment.objective, str):
            experiment.resolve_objective()
        return experiment


def load_experiment(path: str | os.PathLike[str], *, check_objective: bool = True) -> Experiment:
    """Read and validate an experiment YAML file.

    Example:
        >>> exp = load_experiment("examples/mlp_digits.yaml")  # doctest: +SKIP
        >>> exp.metric.direction  # doctest: +SKIP
        'maximize'
    """
    file = Path(path)
    if not file.is_file():
        raise SpecError(f"experiment file {str(path)!r} does not exist.")
    raw = read_yaml(file)
    return Experiment.from_dict(raw, source=str(path), check_objective=check_objective)


def _callable_name(func: Any) -> str:
    return f"{getattr(func, '__module__', '?')}:{getattr(func, '__qualname__', repr(func))}"
