"""A parameter's domain: the values it can take at all, whatever range a space searches.

A shipped space declares it where the model refuses or makes no sense of other values
(``l1_ratio: {..., domain: {ge: 0, le: 1}}``), so that an override beyond it (``high: 1.5``)
is refused when the spec is read instead of failing every trial that draws such a value.
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from autotweak._validation import Where, as_float, as_mapping, check_keys
from autotweak.exceptions import SpaceError

__all__ = ["Domain", "parse_domain"]

# Each bound's key, as in pydantic and annotated-types: its sign, its test, and which end it bounds.
_BOUNDS: dict[str, tuple[str, Callable[[float, float], bool], str]] = {
    "ge": (">=", operator.ge, "lower"),
    "gt": (">", operator.gt, "lower"),
    "le": ("<=", operator.le, "upper"),
    "lt": ("<", operator.lt, "upper"),
}


@dataclass(frozen=True)
class Domain:
    """Bounds every value of a parameter keeps: ``Domain({"ge": 0, "lt": 1})`` for a dropout rate.

    ``owner`` is the space that declared it, for messages; it is no part of its value.

    Example:
        >>> Domain({"ge": 0, "lt": 1}).rule(1)
        'must be < 1'
        >>> Domain({"ge": 0, "lt": 1}).rule(0.5) is None
        True
    """

    bounds: Mapping[str, float]
    owner: str = field(default="", compare=False)

    def rule(self, value: Any) -> str | None:
        """The rule ``value`` breaks (``must be <= 1``); ``None`` when it is within."""
        if not _is_number(value):
            return f"must be a number {self.text()}"
        for key, bound in self.bounds.items():
            sign, holds, _ = _BOUNDS[key]
            if not holds(float(value), bound):
                return f"must be {sign} {bound:g}"
        return None

    def text(self) -> str:
        """``>= 0 and < 1``."""
        return " and ".join(f"{_BOUNDS[k][0]} {v:g}" for k, v in self.bounds.items())

    def to_dict(self) -> dict[str, float]:
        """The YAML form, ``{ge: 0, lt: 1}``."""
        return dict(self.bounds)


def parse_domain(raw: Any, where: Where, owner: str) -> Domain:
    """Read ``{ge|gt: lower, le|lt: upper}``: one bound or both, leaving some value between them."""
    data = as_mapping(raw, where, SpaceError)
    check_keys(data, where, allowed=tuple(_BOUNDS), cls=SpaceError)
    if not data:
        raise where.fail("must give a bound: ge, gt, le or lt, like {ge: 0, le: 1}", dict(data), SpaceError)
    ends = {key: _BOUNDS[key][2] for key in data}
    for end in ("lower", "upper"):
        given = [k for k, e in ends.items() if e == end]
        if len(given) > 1:
            pair = " or ".join(k for k, e in _BOUNDS.items() if e[2] == end)
            raise where.fail(f"must give at most one {end} bound ({pair})", dict(data), SpaceError)
    # The lower bound first, as the rules read: must be >= 0, then <= 1.
    bounds = {k: _number(data[k], where.child(k)) for k in sorted(data, key=lambda k: ends[k] == "upper")}
    if len(bounds) == 2:  # one lower bound, then one upper
        (low, lower), (high, upper) = bounds.items()
        if not (lower <= upper if (low, high) == ("ge", "le") else lower < upper):
            raise where.fail("must leave some value between its bounds", dict(data), SpaceError)
    return Domain(bounds, owner=owner)


def _number(value: Any, where: Where) -> float:
    """A finite bound, kept as the user wrote it (``1``, not ``1.0``, in the spec's records)."""
    number = as_float(value, where)
    return value if isinstance(value, int | float) else number


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
