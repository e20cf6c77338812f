"""The experiment spec: one YAML file, or the same thing as Python objects."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from autotweak._config import base_values, flat_config, nested_config
from autotweak._locations import redact, storage_problem, tracking_problem
from autotweak._validation import (
    Problems,
    Where,
    as_int,
    as_mapping,
    as_name,
    as_str,
    bad_name,
    check_keys,
    is_integer,
)
from autotweak._yaml import read_yaml
from autotweak.exceptions import SpaceError, SpecError
from autotweak.space import (
    CategoricalParam,
    FixedParam,
    FloatParam,
    IntParam,
    SearchSpace,
    load_space,
    space_from_definition,
)
from autotweak.space import Param as SpaceParam
from autotweak.spec._components import PRUNERS, SAMPLERS, check_components
from autotweak.spec._objective import check_signature, import_objective
from autotweak.spec._parts import Budget, Component, Execution, Metric

__all__ = ["Experiment", "load_experiment"]

_OBJECTIVE_RULE = "must be an entry point string ('module:function' or 'file.py:function') or a callable"

_KEYS = (
    "name",
    "description",
    "objective",
    "base",
    "tweaks",
    "metric",
    "budget",
    "sampler",
    "pruner",
    "seed",
    "execution",
    "storage",
    "tracking_uri",
    "tags",
    "baseline",
    "register_model",
)
# The keys of the structured form of ``tweaks`` (as in a library space file).
_DEFINITION_KEYS = ("name", "description", "extends", "params", "drop")
# How close a key of the flat form must be to one of those to be taken for its misspelling:
# 'drops', 'parmas', 'extnds', 'nmae' are; 'dropout' (0.73) is not.
_TYPO_CUTOFF = 0.75
MAX_SEED = 2**31 - 1  # worker i seeds with seed + i, and NumPy takes seeds below 2**32
STORED_SOURCE = "<study "  # the source of a spec read back from a study (f"<study {name}>")


@dataclass(frozen=True, kw_only=True)
class Experiment:
    """A declared experiment: what to run, what to tweak, what to optimize, how long.

    Attributes:
        name: Study name: the Optuna study and the MLflow experiment are named after it.
        objective: ``"package.module:function"`` or a function ``f(config, trial) -> float``;
            ``None`` for a study driven by the ask/tell :class:`~autotweak.Study` only.
        space: The tweaks, a :class:`~autotweak.space.SearchSpace`.
        metric: Name and direction of the value the objective returns.
        base: The base config; each trial's config is the base updated with the tweaks.
        budget: Trials, wall time and compute limits.
        sampler: Sampler by registry name with arguments (``meta`` by default: warm-started from
            a meta-model that fits the space when one is found, otherwise plain TPE).
        pruner: Pruner by registry name with arguments (median by default).
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
    pruner: Component = field(default_factory=lambda: Component("median"))
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
        as_str(self.name, where.child("name"))
        if (
            self.objective is not None
            and not isinstance(self.objective, str)
            and not callable(self.objective)
        ):
            raise where.child("objective").fail(_OBJECTIVE_RULE, self.objective)
        if self.seed is not None and not (is_integer(self.seed) and 0 <= self.seed <= MAX_SEED):
            raise where.child("seed").fail(f"must be an integer from 0 to {MAX_SEED}, or null", self.seed)
        problems = Problems()  # the checks across fields, each on its own: every problem said at once
        checks = ((_check_stores, where), (_check_components, where), (_check_base, where.child("base")))
        for check, at in (*checks, (_check_compute, where)):
            with problems.collect():
                check(self, at)
        problems.raise_any(self.source)

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
            experiment = cls(**_fields(data, where, needed), source=source)
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


def _objective(value: Any, where: Where) -> Any:
    """The spec's objective: ``None``, a callable, or a non-empty entry point string."""
    if value is None or callable(value):
        return value
    if not isinstance(value, str):
        raise where.fail(_OBJECTIVE_RULE, value)
    return as_str(value, where)


def _fields(data: Mapping[str, Any], where: Where, needed: tuple[str, ...]) -> dict[str, Any]:
    """The experiment's fields, each checked on its own: every field's problem is reported at once."""
    problems = Problems()
    out: dict[str, Any] = {"description": str(data.get("description") or "")}
    with problems.collect():
        check_keys(data, where, allowed=_KEYS)
    for key in needed:
        if key not in data:
            problems.errors.append(where.child(key).fail("is required but missing"))
    for key, parse in _PARSERS.items():
        if key in data:
            with problems.collect():
                out.update(parse(data, where.child(key)))
    problems.raise_any(where.source)
    return out


NAME_MAX = 200  # a lock file next to a SQLite storage is named after the study: 255 bytes at most


def parse_name(data: Mapping[str, Any], where: Where) -> dict[str, Any]:
    """The study's ``name``: non-empty text short enough to name files."""
    name = as_str(data["name"], where)
    if len(name.encode()) > NAME_MAX:
        raise where.fail(
            f"must be at most {NAME_MAX} bytes (the study's files are named after it), got "
            f"{len(name.encode())} bytes: {name[:40]!r}..."
        )
    return {"name": name}


def _parse_objective(data: Mapping[str, Any], where: Where) -> dict[str, Any]:
    return {"objective": _objective(data["objective"], where)}


def _parse_space(data: Mapping[str, Any], where: Where) -> dict[str, Any]:
    return {"space": _parse_tweaks(data["tweaks"], where)}


def _parse_metric(data: Mapping[str, Any], where: Where) -> dict[str, Any]:
    return {"metric": Metric.parse(data["metric"], where)}


def _parse_base(data: Mapping[str, Any], where: Where) -> dict[str, Any]:
    return {"base": dict(as_mapping(data["base"] or {}, where))}


def _parse_budget(data: Mapping[str, Any], where: Where) -> dict[str, Any]:
    return {"budget": Budget.parse(data["budget"], where)}


def _parse_sampler(data: Mapping[str, Any], where: Where) -> dict[str, Any]:
    sampler = Component.parse(data["sampler"], where, choices=tuple(SAMPLERS))
    return {"sampler": _model_next_to_spec(sampler, _spec_dir(where))}


def _parse_pruner(data: Mapping[str, Any], where: Where) -> dict[str, Any]:
    return {"pruner": Component.parse(data["pruner"], where, choices=tuple(PRUNERS))}


def _parse_seed(data: Mapping[str, Any], where: Where) -> dict[str, Any]:
    value = data["seed"]
    return {"seed": None if value is None else as_int(value, where, minimum=0)}


def _parse_execution(data: Mapping[str, Any], where: Where) -> dict[str, Any]:
    return {"execution": Execution.parse(data["execution"], where)}


def _parse_store(data: Mapping[str, Any], where: Where) -> dict[str, Any]:
    key = str(where.field)
    return {} if data[key] is None else {key: as_str(data[key], where)}


def _parse_tags(data: Mapping[str, Any], where: Where) -> dict[str, Any]:
    tags = as_mapping(data["tags"] or {}, where)
    return {"tags": {as_name(k, where.child(k)): str(v) for k, v in tags.items()}}


def _parse_baseline(data: Mapping[str, Any], where: Where) -> dict[str, Any]:
    if not isinstance(data["baseline"], bool):
        raise where.fail("must be true or false", data["baseline"])
    return {"baseline": data["baseline"]}


def _parse_register_model(data: Mapping[str, Any], where: Where) -> dict[str, Any]:
    value = data["register_model"]
    if not isinstance(value, bool) and not (isinstance(value, str) and value.strip()):
        raise where.fail("must be true, false or a model name", value)
    return {"register_model": value.strip() if isinstance(value, str) else value}


_PARSERS: dict[str, Callable[[Mapping[str, Any], Where], dict[str, Any]]] = {
    "name": parse_name,
    "objective": _parse_objective,
    "tweaks": _parse_space,
    "metric": _parse_metric,
    "base": _parse_base,
    "budget": _parse_budget,
    "sampler": _parse_sampler,
    "pruner": _parse_pruner,
    "seed": _parse_seed,
    "execution": _parse_execution,
    "storage": _parse_store,
    "tracking_uri": _parse_store,
    "tags": _parse_tags,
    "baseline": _parse_baseline,
    "register_model": _parse_register_model,
}


def _spec_dir(where: Where) -> Path | None:
    """The folder of the spec file, where the files it names are looked for first."""
    spec_file = Path(where.source) if where.source else None
    return spec_file.resolve().parent if spec_file is not None and spec_file.is_file() else None


def _model_next_to_spec(component: Component, spec_dir: Path | None) -> Component:
    """The sampler ``component`` with a relative ``args.model`` file found next to the spec made absolute.

    A model file is looked for as the spec's other files are: next to the spec, then in the
    working directory; made absolute, it is found again by a resume or a worker elsewhere.
    The sampler is compared on resume by its model's digest, not by this path. (The learned
    pruner's model keeps its path as written: the pruner is compared by it.)
    """
    model = component.args.get("model")
    if spec_dir is None or not isinstance(model, str) or model == "auto" or Path(model).is_absolute():
        return component
    found = spec_dir / model
    if not found.is_file():
        return component
    return Component(component.name, {**component.args, "model": str(found)})


def _parse_tweaks(raw: Any, where: Where) -> SearchSpace:
    # Space files are found next to the spec first, as the objective's file is.
    base_dir = _spec_dir(where)
    if isinstance(raw, str):
        try:
            return load_space(raw, base_dir=base_dir)
        except SpecError as exc:
            if exc.source is not None or exc.field is not None:
                raise
            raise SpecError(exc.rule, source=where.source, field=where.field) from None
    data = as_mapping(raw, where)
    if any(key in _DEFINITION_KEYS and not _is_param_definition(data[key]) for key in data):
        _check_structured(data, where)
        return space_from_definition(data, where, base_dir=base_dir)
    _check_flat(data, where)
    return SearchSpace.from_dict(data, where=where)


def _is_param_definition(value: Any) -> bool:
    """Whether ``value`` reads as one parameter's definition (a mapping with a ``type``)."""
    return isinstance(value, Mapping) and "type" in value


def _check_structured(data: Mapping[str, Any], where: Where) -> None:
    """The structured form (``extends``, ``params``, ``drop``...) takes no other key.

    Any other key was either misspelled or is a parameter that belongs under ``params``;
    taking it for a fixed parameter would run a study without the search it declares.
    """
    structural = [k for k in _DEFINITION_KEYS if k in data and not _is_param_definition(data[k])]
    for key, value in data.items():
        if key != "params" and _is_param_definition(value):
            what = "must not define a parameter" if key in _DEFINITION_KEYS else "is not a known key"
            raise SpaceError(
                f"{what}; with {', '.join(repr(k) for k in structural)}, parameters go under 'params'",
                source=where.source,
                field=where.child(key).field,
            )
    check_keys(data, where, allowed=_DEFINITION_KEYS, cls=SpaceError)


def _check_flat(data: Mapping[str, Any], where: Where) -> None:
    """In the flat form every key is a parameter; one spelled like a structural key is a typo.

    A parameter of such a name is still possible, given as a definition with a ``type``.
    """
    for key, value in data.items():
        if _is_param_definition(value):
            continue
        hint = difflib.get_close_matches(key, _DEFINITION_KEYS, n=1, cutoff=_TYPO_CUTOFF)
        if hint:
            raise SpaceError(
                f"is not a known key; did you mean '{hint[0]}'? (a parameter named {key!r} "
                "is given as a definition with a 'type', such as {type: fixed, value: ...})",
                source=where.source,
                field=where.child(key).field,
            )


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


def _callable_name(func: Any) -> str:
    return f"{getattr(func, '__module__', '?')}:{getattr(func, '__qualname__', repr(func))}"
