"""Reading parameters from their YAML / dict form, with errors that name the field."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import yaml

from autotweak._validation import Where, as_bool, as_float, as_int, as_mapping, check_keys, closest
from autotweak.exceptions import SpaceError, SpecError
from autotweak.space._domain import Domain, parse_domain
from autotweak.space._params import (
    CategoricalParam,
    Condition,
    FixedParam,
    FloatParam,
    IntParam,
    Param,
    on_step,
)

_KINDS = ("float", "int", "categorical", "fixed")
_KEYS = {
    "float": ("type", "low", "high", "log", "step", "when", "domain", "description"),
    "int": ("type", "low", "high", "log", "step", "when", "domain", "description"),
    "categorical": ("type", "choices", "when", "domain", "description"),
    "fixed": ("type", "value", "when", "domain", "description"),
}


def parse_param(name: str, raw: Any, where: Where, *, owner: str = "") -> Param:
    """Build one parameter from ``{type: ..., ...}``; a bare scalar is a fixed value, a bare list refused.

    ``owner`` names the space that declared its ``domain``, for the message of a value beyond it.
    """
    try:
        param = _parse_param(name, raw, where)
        if not isinstance(raw, Mapping) or "domain" not in raw:
            return param
        domain = parse_domain(raw["domain"], where.child("domain"), owner)
        _check_domain(param, domain, where)
        return replace(param, domain=domain)
    except SpaceError:
        raise
    except SpecError as exc:
        raise SpaceError(exc.rule, source=exc.source, field=exc.field) from None


def _check_domain(param: Param, domain: Domain, where: Where) -> None:
    """Each value ``param`` can take is within ``domain``: its range's ends, its choices, its value."""
    places: list[tuple[Where, Any]]
    if isinstance(param, FloatParam | IntParam):
        places = [(where.child("low"), param.low), (where.child("high"), param.high)]
    elif isinstance(param, CategoricalParam):
        places = [(where.child("choices").child(i), choice) for i, choice in enumerate(param.choices)]
    else:
        places = [(where.child("value"), param.value)]
    for at, value in places:
        rule = domain.rule(value)
        if rule is not None:
            owner = f" in space '{domain.owner}'" if domain.owner else ""
            raise at.fail(f"{rule} (the domain of {param.name}{owner})", value, SpaceError)


def _parse_param(name: str, raw: Any, where: Where) -> Param:
    if isinstance(raw, list):  # choices to most people (W&B's values, Ray's grid): said, not guessed
        raise where.fail(
            f"must be {{type: categorical, choices: {_flow(raw)}}} to search among these values, or "
            f"{{type: fixed, value: {_flow(raw)}}} to give every trial the list itself",
            raw,
            SpaceError,
        )
    if not isinstance(raw, Mapping):
        return FixedParam(name, raw)
    data = as_mapping(raw, where, SpaceError)
    kind = data.get("type")
    if kind is None:
        raise where.child("type").fail(f"is required (one of {', '.join(_KINDS)})", cls=SpaceError)
    if kind not in _KINDS:
        aliases = {"integer": "int", "str": "categorical", "choice": "categorical", "const": "fixed"}
        hint = aliases.get(str(kind).lower()) or closest(str(kind), _KINDS)
        tip = f" (did you mean '{hint}'?)" if hint else ""
        raise where.child("type").fail(f"must be one of {', '.join(_KINDS)}{tip}", kind, SpaceError)
    check_keys(data, where, allowed=_KEYS[kind], cls=SpaceError)
    when = _parse_when(data.get("when"), where.child("when"))
    description = str(data.get("description", ""))
    if kind == "fixed":
        check_keys(data, where, allowed=_KEYS[kind], required=("value",), cls=SpaceError)
        return FixedParam(name, data["value"], when=when, description=description)
    if kind == "categorical":
        return _categorical(name, data, where, when, description)
    return _numeric(name, kind, data, where, when, description)


def _categorical(
    name: str, data: Mapping[str, Any], where: Where, when: Condition | None, description: str
) -> CategoricalParam:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise where.child("choices").fail("must be a non-empty list", choices, SpaceError)
    for i, choice in enumerate(choices):
        if choice is not None and not isinstance(choice, bool | int | float | str):
            raise (
                where.child("choices")
                .child(i)
                .fail("must be null, a boolean, a number or a string", choice, SpaceError)
            )
    _check_distinct(choices, where.child("choices"))
    return CategoricalParam(name, tuple(choices), when=when, description=description)


def _check_distinct(choices: list[Any], where: Where) -> None:
    """Refuse choices equal under ``==`` (``1 == 1.0 == true``, ``0 == false``).

    Optuna finds a choice by ``==`` (``list.index``), so two equal choices would be stored as
    the first one while the trial (and MLflow) saw the other.
    """
    for i, later in enumerate(choices):
        for earlier in choices[:i]:
            if earlier == later or repr(earlier) == repr(later):
                pair = f"{json.dumps(earlier)} == {json.dumps(later)}"
                raise where.fail(f"must not repeat a value ({pair})", choices, SpaceError)


def _numeric(
    name: str,
    kind: str,
    data: Mapping[str, Any],
    where: Where,
    when: Condition | None,
    description: str,
) -> FloatParam | IntParam:
    check_keys(data, where, allowed=_KEYS[kind], required=("low", "high"), cls=SpaceError)
    log = as_bool(data.get("log", False), where.child("log"))
    low: float
    high: float
    step: float | None
    if kind == "int":
        low = as_int(data["low"], where.child("low"))
        high = as_int(data["high"], where.child("high"))
        step = as_int(data.get("step", 1), where.child("step"), minimum=1)
    else:
        low = as_float(data["low"], where.child("low"))
        high = as_float(data["high"], where.child("high"))
        raw_step = data.get("step")
        step = (
            None
            if raw_step is None
            else as_float(raw_step, where.child("step"), minimum=0, strict_minimum=True)
        )
    _check_range(kind, low, high, log, step, where)
    if kind == "int":
        return IntParam(
            name, int(low), int(high), log=log, step=int(step or 1), when=when, description=description
        )
    return FloatParam(name, float(low), float(high), log=log, step=step, when=when, description=description)


def _check_range(kind: str, low: float, high: float, log: bool, step: float | None, where: Where) -> None:
    """The rules Optuna's distributions check at each trial, checked once at load."""
    if low > high:
        raise where.fail("must satisfy low <= high", {"low": low, "high": high}, SpaceError)
    if log and low <= 0:
        raise where.child("low").fail("must be > 0 when log is true", low, SpaceError)
    # Optuna takes no step with log for floats; for ints only its default step of 1.
    if log and step is not None and (kind == "float" or step != 1):
        raise where.child("step").fail("cannot be combined with log: true", step, SpaceError)
    if step is not None and not on_step(high - low, step):
        # Optuna would narrow the range to the last step below high, with a warning only.
        steps = (high - low) / step
        below, above = low + math.floor(steps) * step, low + math.ceil(steps) * step
        rule = f"must be low plus a multiple of step {_show(step)} ({_show(below)} or {_show(above)})"
        raise where.child("high").fail(rule, high, SpaceError)


def _show(number: float) -> str:
    """A number as a user wrote it: no float noise such as 0.8999999999999999."""
    return str(number) if isinstance(number, int) else f"{number:.12g}"


def _parse_when(raw: Any, where: Where) -> Condition | None:
    if raw is None:
        return None
    data = as_mapping(raw, where, SpaceError)
    if len(data) != 1:
        raise where.fail(
            "must name exactly one parent parameter, like {optimizer: sgd}", dict(data), SpaceError
        )
    ((parent, values),) = data.items()
    options = tuple(values) if isinstance(values, list) else (values,)
    if not options:
        raise where.child(parent).fail("must list at least one value", values, SpaceError)
    return Condition(parent, options)


def _flow(values: list[Any]) -> str:
    """A list as YAML writes it inline: ``[adam, sgd]``."""
    return yaml.safe_dump(values, default_flow_style=True, width=10**6).strip()
