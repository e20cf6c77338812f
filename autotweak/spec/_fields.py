"""The spec's fields, each parsed from its mapping form and checked on its own."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from autotweak._validation import Problems, Where, as_int, as_mapping, as_name, as_str, check_keys
from autotweak.spec._components import PRUNERS, SAMPLERS
from autotweak.spec._parts import Budget, Component, Execution, Metric
from autotweak.spec._tweaks import parse_tweaks, spec_dir

__all__ = ["NAME_MAX", "NAME_RULE", "OBJECTIVE_RULE", "check_study_name", "parse_fields", "parse_name"]

OBJECTIVE_RULE = "must be an entry point string ('module:function' or 'file.py:function') or a callable"

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


def _objective(value: Any, where: Where) -> Any:
    """The spec's objective: ``None``, a callable, or a non-empty entry point string."""
    if value is None or callable(value):
        return value
    if not isinstance(value, str):
        raise where.fail(OBJECTIVE_RULE, value)
    return as_str(value, where)


def parse_fields(data: Mapping[str, Any], where: Where, needed: tuple[str, ...]) -> dict[str, Any]:
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
# The study's checkpoint and artifact folders are named after it, and so is its registered model,
# which MLflow refuses with a '/' or ':' in it, or starting with '..'.
NAME_RULE = (
    "must name one folder and an MLflow model: no '/', '\\' or ':', no control characters, and no leading '.'"
)
_NOT_IN_NAMES = re.compile(r"[/\\:\x00-\x1f\x7f]")


def check_study_name(value: Any, where: Where) -> str:
    """Return ``value`` if it can name the study's folders and its registered model.

    Example:
        >>> check_study_name("../escape", Where(field="name"))
        Traceback (most recent call last):
        autotweak.exceptions.SpecError: 'name' must name one folder and an MLflow model: ...
    """
    name = as_str(value, where)
    if len(name.encode()) > NAME_MAX:
        raise where.fail(
            f"must be at most {NAME_MAX} bytes (the study's files are named after it), got "
            f"{len(name.encode())} bytes: {name[:40]!r}..."
        )
    if name.startswith(".") or _NOT_IN_NAMES.search(name):
        raise where.fail(NAME_RULE, name)
    return name


def parse_name(data: Mapping[str, Any], where: Where) -> dict[str, Any]:
    """The study's ``name``: text short enough to name files, that names one folder."""
    return {"name": check_study_name(data["name"], where)}


def _parse_objective(data: Mapping[str, Any], where: Where) -> dict[str, Any]:
    return {"objective": _objective(data["objective"], where)}


def _parse_space(data: Mapping[str, Any], where: Where) -> dict[str, Any]:
    return {"space": parse_tweaks(data["tweaks"], where)}


def _parse_metric(data: Mapping[str, Any], where: Where) -> dict[str, Any]:
    return {"metric": Metric.parse(data["metric"], where)}


def _parse_base(data: Mapping[str, Any], where: Where) -> dict[str, Any]:
    return {"base": dict(as_mapping(data["base"] or {}, where))}


def _parse_budget(data: Mapping[str, Any], where: Where) -> dict[str, Any]:
    return {"budget": Budget.parse(data["budget"], where)}


def _parse_sampler(data: Mapping[str, Any], where: Where) -> dict[str, Any]:
    sampler = Component.parse(data["sampler"], where, choices=tuple(SAMPLERS))
    return {"sampler": _model_next_to_spec(sampler, spec_dir(where), where)}


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
    return {"tags": {as_name(k, where.child(k)): _tag_value(v, where.child(k)) for k, v in tags.items()}}


def _tag_value(value: Any, where: Where) -> str:
    """An MLflow tag holds one text: a list, a mapping or null would be kept as Python writes it."""
    if value is None or isinstance(value, list | tuple | dict | set):
        raise where.fail("must be a text, a number or true/false (an MLflow tag holds one value)", value)
    if isinstance(value, bool):  # as YAML writes it, so that a search for tags.gpu = 'true' finds it
        return "true" if value else "false"
    return str(value)


def _parse_baseline(data: Mapping[str, Any], where: Where) -> dict[str, Any]:
    if not isinstance(data["baseline"], bool):
        raise where.fail("must be true or false", data["baseline"])
    return {"baseline": data["baseline"]}


def _parse_register_model(data: Mapping[str, Any], where: Where) -> dict[str, Any]:
    value = data["register_model"]
    if not isinstance(value, bool) and not (isinstance(value, str) and value.strip()):
        raise where.fail("must be true, false or a model name", value)
    return {"register_model": check_study_name(value.strip(), where) if isinstance(value, str) else value}


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


def _model_next_to_spec(component: Component, spec_dir: Path | None, where: Where) -> Component:
    """The sampler ``component`` with a relative ``args.model`` file found next to the spec made absolute.

    A model file is looked for as the spec's other files are: next to the spec, then in the
    working directory; made absolute, it is found again by a resume or a worker elsewhere.
    The sampler is compared on resume by its model's digest, not by this path. (The learned
    pruner's model keeps its path as written: the pruner is compared by it.)
    """
    model = component.args.get("model")
    if (
        spec_dir is None
        or not isinstance(model, str)
        or model in ("auto", "none")
        or Path(model).is_absolute()
    ):
        return component
    found = spec_dir / model
    if found.is_file():
        return Component(component.name, {**component.args, "model": str(found)})
    if Path(model).is_file():
        return component
    near = difflib.get_close_matches(found.name, [p.name for p in found.parent.glob("*.npz")], n=1)
    tip = f" (did you mean '{near[0]}'?)" if near else ""
    field = where.child("args").child("model")
    raise field.fail(
        f"must be 'auto', 'none' or a meta-model file, next to the spec ({found}) or in the working "
        f"directory ({Path(model).resolve()}), and neither holds it{tip}; fit one with "
        "`autotweak meta fit`",
        model,
    )
