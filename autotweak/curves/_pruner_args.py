"""The arguments of ``LearnedCurvePruner``, checked when it is built."""

from __future__ import annotations

from typing import Any

from autotweak._validation import is_integer
from autotweak.exceptions import ArgumentError

__all__ = ["PrunerArgumentError", "check", "count"]


class PrunerArgumentError(ArgumentError):
    """A pruner argument breaks a rule."""


def check(name: str, value: Any, ok: bool, rule: str) -> None:
    if not ok:
        raise PrunerArgumentError(f"'{name}' of LearnedCurvePruner must be {rule}, got {name}={value!r}.")


def count(name: str, value: Any, low: int, *, optional: bool = False) -> int | None:
    """``value`` as an ``int`` >= ``low`` (NumPy integers too, never a bool), or ``None`` if allowed."""
    if value is None and optional:
        return None
    rule = f"{'None or ' if optional else ''}an integer >= {low}"
    check(name, value, is_integer(value), rule)
    check(name, value, int(value) >= low, rule)
    return int(value)
