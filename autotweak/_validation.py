"""Small, generic checks for user input: each error names the field, the rule, the value.

A :class:`Where` carries the file and the dotted field path, so that every message reads
``"exp.yaml: 'budget.trials' must be an integer >= 1, got 0."``.
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeGuard

import yaml

from autotweak.exceptions import SpecError

_MISSING: Any = object()


@dataclass(frozen=True)
class Where:
    """Where a value came from: a source (file name or ``"<python>"``) and a field path."""

    source: str | None = None
    field: str | None = None

    def child(self, key: str | int) -> Where:
        """Return the location of ``key`` inside this one."""
        part = f"[{key}]" if isinstance(key, int) else str(key)
        if self.field is None:
            return Where(self.source, part)
        joiner = "" if isinstance(key, int) else "."
        return Where(self.source, f"{self.field}{joiner}{part}")

    def fail(self, rule: str, value: Any = _MISSING, cls: type[SpecError] = SpecError) -> SpecError:
        """Build the error for a broken rule; ``value`` is shown when given."""
        shown = "" if value is _MISSING else f", got {value!r}"
        return cls(f"{rule}{shown}.", source=self.source, field=self.field)


class Problems:
    """Spec errors gathered across fields that are checked independently, raised together.

    Example:
        >>> problems = Problems()
        >>> with problems.collect():
        ...     raise Where(field="seed").fail("must be >= 0", -1)
        >>> with problems.collect():
        ...     raise Where(field="name").fail("must not be empty")
        >>> problems.raise_any("exp.yaml")
        Traceback (most recent call last):
        autotweak.exceptions.SpecError: exp.yaml: 2 problems:
          'seed' must be >= 0, got -1.
          'name' must not be empty.
    """

    def __init__(self) -> None:
        self.errors: list[SpecError] = []

    @contextmanager
    def collect(self) -> Iterator[None]:
        """Run the block; a :class:`SpecError` it raises is kept instead of propagated."""
        try:
            yield
        except SpecError as exc:
            self.errors.extend(exc.problems)

    def raise_any(self, source: str | None = None, cls: type[SpecError] = SpecError) -> None:
        """Raise the one error kept as it is, several as one ``cls`` listing them; nothing if none."""
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise cls.combined(self.errors, source)


def check_keys(
    data: Mapping[str, Any],
    where: Where,
    *,
    allowed: Iterable[str],
    required: Iterable[str] = (),
    cls: type[SpecError] = SpecError,
) -> None:
    """Reject unknown keys (with a "did you mean" hint) and missing required ones."""
    allowed = list(allowed)
    for key in data:
        if key not in allowed:
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            tip = f"; did you mean '{hint[0]}'?" if hint else f"; allowed keys: {', '.join(allowed)}"
            raise cls(
                f"is not a known key{tip}",
                source=where.source,
                field=where.child(str(key)).field,
            )
    for key in required:
        if key not in data:
            raise where.child(key).fail("is required but missing", cls=cls)


def as_mapping(value: Any, where: Where, cls: type[SpecError] = SpecError) -> Mapping[str, Any]:
    """Return ``value`` if it is a mapping with string keys."""
    if not isinstance(value, Mapping):
        raise where.fail("must be a mapping of names to values", value, cls)
    key = next((k for k in value if not isinstance(k, str)), None)
    if key is not None:
        raise where.fail(f"must have names (text) as keys; quote the key {key!r} as '{key}'", value, cls)
    return value


def as_str(value: Any, where: Where, *, choices: Iterable[str] | None = None) -> str:
    """Return ``value`` if it is a non-empty string (and one of ``choices``, if given)."""
    if not isinstance(value, str) or not value.strip():
        raise where.fail("must be a non-empty string", value)
    if choices is not None:
        options = list(choices)
        if value not in options:
            hint = closest(value, options)
            tip = f" (did you mean '{hint}'?)" if hint else ""
            raise where.fail(f"must be one of {', '.join(options)}{tip}", value)
    return value


# MLflow's rule for metric, param and tag names (mlflow.utils.validation), and its length limit.
_MLFLOW_NAME = re.compile(r"^[/\w.\- :]+$")
_MLFLOW_NAME_MAX = 250
NAME_RULE = "must be a name MLflow can record: letters, digits, spaces and _ - . : / only"


def bad_name(name: str) -> str | None:
    """Why MLflow would refuse ``name`` as a metric, param or tag name; ``None`` if it would not."""
    if not _MLFLOW_NAME.match(name):
        return NAME_RULE
    if len(name) > _MLFLOW_NAME_MAX:
        return f"must be at most {_MLFLOW_NAME_MAX} characters (MLflow's limit for names)"
    return None


def as_name(value: Any, where: Where, cls: type[SpecError] = SpecError) -> str:
    """Return ``value`` if it is a non-empty string that MLflow takes as a name."""
    if not isinstance(value, str) or not value.strip():
        raise where.fail("must be a non-empty string", value, cls)
    rule = bad_name(value)
    if rule is not None:
        raise where.fail(rule, value, cls)
    return value


def closest(value: str, options: Iterable[str]) -> str | None:
    """The option ``value`` most likely meant: same but for case, a prefix of one, or a close spelling."""
    options = list(options)
    folded = [o for o in options if o.lower() == value.lower()]
    prefixed = [o for o in options if value and o.lower().startswith(value.lower())]
    if folded or len(prefixed) == 1:
        return (folded or prefixed)[0]
    close = difflib.get_close_matches(value.lower(), options, n=1)
    return close[0] if close else None


def as_bool(value: Any, where: Where) -> bool:
    """Return ``value`` if it is a boolean."""
    if not isinstance(value, bool):
        raise where.fail("must be true or false", value)
    return value


def is_integer(value: Any) -> TypeGuard[int]:
    """Whether ``value`` is an integer, Python's or NumPy's, and not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> TypeGuard[float]:
    """Whether ``value`` is a real number, Python's or NumPy's, and not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def score_of(raw: object) -> float | None:
    """``raw`` as a float, or ``None`` when it is not a number: a score or a report's value.

    Text and booleans are refused although ``float()`` takes them: ``"0.7"`` or ``True``
    returned as a score is a bug in the objective, not a value to rank trials by.
    Numbers of other libraries (NumPy scalars, 0-d arrays and tensors) are taken.
    """
    numpy_bool = type(raw).__module__ == "numpy" and type(raw).__name__ in ("bool", "bool_")
    if isinstance(raw, str | bytes | bytearray | bool) or numpy_bool:
        return None
    try:
        return float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def as_int(value: Any, where: Where, *, minimum: int | None = None) -> int:
    """Return ``value`` if it is an integer (not a bool) and at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise where.fail("must be an integer" + _at_least(minimum), value)
    number = int(value)
    if minimum is not None and number < minimum:
        raise where.fail("must be an integer" + _at_least(minimum), value)
    return number


def as_float(
    value: Any, where: Where, *, minimum: float | None = None, strict_minimum: bool = False
) -> float:
    """Return ``value`` as a finite float; numeric strings such as ``"1e-4"`` are accepted.

    YAML 1.1 reads ``1e-4`` as a string, so refusing it would punish a common spelling.
    """
    number: float
    if isinstance(value, bool):
        raise where.fail("must be a number", value)
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise where.fail("must be a number", value) from None
    else:
        raise where.fail("must be a number", value)
    if not math.isfinite(number):
        raise where.fail("must be a finite number", value)
    if minimum is not None:
        below = number <= minimum if strict_minimum else number < minimum
        if below:
            sign = ">" if strict_minimum else ">="
            raise where.fail(f"must be a number {sign} {minimum:g}", value)
    return number


def _at_least(minimum: int | None) -> str:
    return "" if minimum is None else f" >= {minimum}"


def yaml_error(path: str, exc: yaml.YAMLError, error: type[SpecError] = SpecError) -> SpecError:
    """One line, ``file:line:column: not valid YAML: problem``, as compilers say it.

    PyYAML's own message spans several lines and points at where it gave up (often the end of
    the file); an unclosed bracket or quote is pointed at where it opens instead.
    """
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.context_mark or exc.problem_mark
        if mark is not None:
            problem = exc.problem or exc.context or "cannot be read"
            found = exc.problem_mark
            if exc.context_mark is not None and found is not None and exc.context:
                problem = problem.replace("'<stream end>'", "the end of the file")
                if "end of" not in problem:
                    problem += f" at line {found.line + 1}, column {found.column + 1}"
                problem += f" ({exc.context} that starts here)"
            return error(f"not valid YAML: {problem}", source=f"{path}:{mark.line + 1}:{mark.column + 1}")
    return error(f"not valid YAML: {' '.join(str(exc).split())}", source=path)
