"""The arguments of ``MetaSampler``, checked when it is built.

Each rule names the argument, what it must be and the value given, so that a wrong
argument fails at construction and not at the fifth trial.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, cast

from autotweak._validation import is_integer, is_number
from autotweak.exceptions import ArgumentError
from autotweak.meta._model import MetaModel, load_meta_model

__all__ = ["MetaSamplerArgumentError"]


class MetaSamplerArgumentError(ArgumentError):
    """A ``MetaSampler`` argument breaks a rule."""


def _check(name: str, value: Any, ok: bool, rule: str) -> None:
    if not ok:
        raise MetaSamplerArgumentError(f"'{name}' of MetaSampler must be {rule}, got {name}={value!r}.")


def _count(name: str, value: Any, low: int) -> int:
    """``value`` as an ``int`` >= ``low`` (NumPy integers too, never a bool)."""
    integer = is_integer(value)
    _check(name, value, integer and int(value) >= low, f"an integer >= {low}")
    return int(value)


def _tau(name: str, value: Any) -> float:
    """``value`` as a Kendall tau: a number in [-1, 1]."""
    real = is_number(value)
    _check(name, value, real and -1.0 <= float(value) <= 1.0, "a number in [-1, 1] (a Kendall tau)")
    return float(value)


def _model_argument(model: Any) -> MetaModel | None:
    """The model itself, read from its file if given one."""
    rule = "a MetaModel, a meta-model file or None"
    _check("model", model, model is None or isinstance(model, MetaModel | str | os.PathLike), rule)
    if isinstance(model, str | os.PathLike):
        searched = str(model) in ("auto", "none")
        _check("model", model, not searched, f"{rule} (for {model!r}, use resolve_meta_model(model, space))")
        return load_meta_model(model)
    return cast(MetaModel | None, model)


def _descriptor_argument(descriptor: Any) -> dict[str, Any] | None:
    """The descriptor as a dict; its non-finite numbers are kept (the prior ignores them)."""
    rule = "a mapping of feature names to numbers or strings, or None"
    if descriptor is None:
        return None
    _check("descriptor", descriptor, isinstance(descriptor, Mapping), rule)
    for key, value in descriptor.items():
        number = is_number(value)
        _check("descriptor", {key: value}, isinstance(key, str) and (number or isinstance(value, str)), rule)
    return dict(descriptor)
