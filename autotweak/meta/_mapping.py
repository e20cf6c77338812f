"""Recorded params -> a config of a search space: renamed, missing and out-of-range params.

Recorded params come as strings (MLflow), native values (tables, Optuna) or anything a
person logged. :class:`ParamMapper` turns one record into a config of the space, or says
why it cannot (the reason a record is skipped); it never raises on a bad record.

The rules, param by param of the space (only active ones: a conditional param whose
condition does not hold is left out):

- The record's key is the space's name, an old name given in ``renames`` (old -> new), or
  an alias that differs only in case, ``-``, ``_``, ``.`` or spaces (``learning-rate``,
  ``LearningRate`` -> ``learning_rate``). A param recorded under two of these names with
  different values is a skip.
- Strings are parsed to the param's type (``"0.01"``, ``"64"``, ``"64.0"``, ``"True"``,
  ``"None"``, a categorical choice's text).
- Missing: filled with the space's fixed value or the base config's value when there is
  one, else the record is skipped (``"param 'x' is missing"``).
- Out of range: clipped when within 10% of the range's width (on the log scale for a log
  param), else skipped (``"param 'x' = 5.0 out of range [0.0, 1.0]"``); an int off its
  step is moved to the nearest step. A float log param recorded as 0 (``weight_decay=0``,
  a library's default "none") is taken as the range's low end, and noted.
- An unknown categorical choice, a value of the wrong kind, or a fixed param recorded with
  another value: skipped.
- Params not in the space are ignored, and noted on each kept record with the rename they
  may need (``lr`` for ``learning_rate``: its initials, or a near spelling, recorded with a
  value that param would keep: ``bs=64`` is no beam size of 1 to 8); a record skipped for a
  missing param says which ignored name may be that param.

Example:
    >>> from autotweak.space import SearchSpace
    >>> space = SearchSpace.from_dict({"learning_rate": {"type": "float", "low": 0.001, "high": 0.1}})
    >>> map_params({"Learning-Rate": "0.01", "epochs": "3"}, space)
    ({'learning_rate': 0.01}, None)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

from autotweak.meta._histories import HistoryError
from autotweak.meta._renames import alias, guess, rename_text
from autotweak.meta._skips import HintedReason, ValueReason
from autotweak.space import CategoricalParam, FixedParam, FloatParam, IntParam, Param, SearchSpace

__all__ = ["ParamMapper", "map_params"]

CLIP_TOLERANCE = 0.1
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_NONE = frozenset({"none", "null", ""})


_MEMO = 100_000  # distinct records remembered: tables repeat each config on every task
_Mapped = tuple[dict[str, Any] | None, str | None, Counter[str]]
_Key = tuple[tuple[tuple[str, type, Any], ...], frozenset[str]]


class _Skip(Exception):
    """A record cannot be mapped; ``reason`` says why (a :class:`ValueReason` when it names a value)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _bad(name: str, value: Any, rule: str) -> _Skip:
    """A skip for param ``name``'s ``value``, counted by ``rule`` whatever the value."""
    return _Skip(ValueReason(f"param {name!r}", value, rule))


def _key(raw: Mapping[str, Any]) -> tuple[tuple[str, type, Any], ...] | None:
    """A hashable form of a record, types included (``True`` is not ``1``); ``None`` if none."""
    try:
        key = tuple((str(k), type(v), v) for k, v in raw.items())
        hash(key)
    except Exception:  # unhashable or hostile values: map without the memo
        return None
    return key


class ParamMapper:
    """Maps recorded params onto ``space``, counting what it changed in :attr:`notes`.

    A change with a hint (a rename an ignored param may need) is a :class:`HintedReason`,
    counted apart from the same change with another hint or none;
    :meth:`SkipReport.note_all` counts them under their rule, as one line.

    Args:
        space: The search space configs must belong to.
        renames: Old recorded name -> the space's name.
        base: Values for params a record lacks (e.g. the experiment's base config).

    Raises:
        HistoryError: If ``renames`` names a param the space lacks.

    Example:
        >>> from autotweak.space import SearchSpace
        >>> space = SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0}})
        >>> mapper = ParamMapper(space)
        >>> mapper.map({"x": "1.05"}), mapper.map({"x": 5.0})
        (({'x': 1.0}, None), (None, "param 'x' = 5.0 out of range [0.0, 1.0]"))
        >>> dict(mapper.notes)
        {"param 'x' clipped into range": 1}
    """

    def __init__(
        self,
        space: SearchSpace,
        renames: Mapping[str, str] | None = None,
        base: Mapping[str, Any] | None = None,
    ) -> None:
        self.space = space
        self.renames = dict(renames or {})
        self.base = dict(base or {})
        wrong = {old: new for old, new in self.renames.items() if new not in space}
        if wrong:
            raise HistoryError(
                f"'renames' must map recorded names to parameters of the space ({', '.join(space.names)}), "
                f"got {wrong}."
            )
        self._aliases = {alias(name): name for name in space.names}
        self._guesses: dict[str, list[str]] = {}
        self._extra: list[tuple[str, Any]] = []  # the record's names the space lacks, with their values
        self._changes: Counter[str] = Counter()
        self._memo: dict[_Key, _Mapped] = {}
        self.notes: Counter[str] = Counter()

    def map(self, raw: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        """``(config, None)`` for a record that maps onto the space, else ``(None, reason)``.

        Changes made to a kept record are counted in :attr:`notes`, once per record.
        """
        config, reason, changes = self.mapped(raw)
        if config is not None:
            self.notes.update(changes)
        return config, reason

    def mapped(self, raw: Mapping[str, Any], quiet: frozenset[str] = frozenset()) -> _Mapped:
        """``(config, reason, changes)`` as :meth:`map` finds them, the changes not yet counted.

        For a caller that may still skip the record for another reason: it counts the
        changes in :attr:`notes` once it keeps the record.

        Args:
            raw: The record's params.
            quiet: The record's names the space lacks that are no news: ignored unnoted
                (an autotweak trial's base values its study never tweaked).
        """
        record = _key(raw)
        key = None if record is None else (record, quiet)
        try:
            mapped = self._memo.get(key) if key is not None else None
        except Exception:  # a value whose == raises
            key, mapped = None, None
        if mapped is None:
            mapped = self._map(raw, quiet)
            if key is not None and len(self._memo) < _MEMO:
                self._memo[key] = mapped
        config, reason, changes = mapped
        if config is None:
            return None, reason, Counter()
        return dict(config), None, changes

    def _map(self, raw: Mapping[str, Any], quiet: frozenset[str]) -> _Mapped:
        self._changes, self._extra = Counter(), []
        try:
            named = self._names(raw)
            config: dict[str, Any] = {}
            for param in self.space.params:
                if param.when is not None and not param.when.holds(config):
                    continue
                config[param.name] = self._value(param, named)
        except _Skip as skip:
            return None, skip.reason, Counter()
        except Exception as exc:  # a record must never crash the reading
            return None, f"params cannot be read: {type(exc).__name__}", Counter()
        for key, value in self._extra:
            if key not in quiet:
                self._changes[self._ignored(key, value)] += 1
        return config, None, self._changes

    # -- names ----------------------------------------------------------------------------
    def _names(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """The record keyed by the space's names; a param given twice must have one value."""
        named: dict[str, Any] = {}
        later: list[tuple[str, Any]] = []
        for key, value in raw.items():
            key = str(key)
            if key in self.space:
                named[key] = value
            else:
                target = self.renames.get(key) or self._aliases.get(alias(key))
                if target is None:
                    self._extra.append((key, value))
                else:
                    later.append((target, value))
        for target, value in later:
            if target not in named:
                named[target] = value
            elif not _same(named[target], value):
                raise _Skip(f"param {target!r} is recorded twice (under two names) with different values")
        return named

    def _guess(self, key: str, value: Any) -> list[str]:
        """The space's names ``key`` may stand for, by its name, and whose values ``value`` is one of.

        ``bs`` may be a batch size or a beam size: recorded as 64, it is hinted as the one
        whose range or choices hold 64 (as that value would be kept under that name).
        """
        if key not in self._guesses:
            self._guesses[key] = guess(key, self.space.names)
        return [name for name in self._guesses[key] if _fits(self.space[name], value)]

    def _ignored(self, key: str, value: Any) -> str:
        """The note for a kept record's ``key`` the space lacks, with the rename it may need.

        It is counted under one rule whatever the value: a report says for how many records
        the hint holds, in one line.
        """
        rule = f"param {key!r} is not in the space (ignored)"
        names = self._guess(key, value)
        if not names:
            return rule
        shown = " or ".join(repr(name) for name in names)
        return HintedReason(rule, f"the space's {shown}", rename_text(key, names))

    def _missing(self, name: str) -> _Skip:
        """The skip for a missing param ``name``, naming the record's key that may stand for it."""
        rule = f"param {name!r} is missing"
        for key, value in self._extra:
            if name in self._guess(key, value):
                return _Skip(HintedReason(rule, f"recorded as {key!r}", rename_text(key, [name])))
        return _Skip(rule)

    # -- values ---------------------------------------------------------------------------
    def _value(self, param: Param, named: Mapping[str, Any]) -> Any:
        if param.name not in named:
            return self._fill(param)
        return _kept(param, named[param.name], self._changes)

    def _fill(self, param: Param) -> Any:
        if isinstance(param, FixedParam):
            return param.value
        if param.name in self.base:
            self._changes[f"param {param.name!r} filled from the base config"] += 1
            return self._value(param, {param.name: self.base[param.name]})
        raise self._missing(param.name)


def _kept(param: Param, value: Any, notes: Counter[str]) -> Any:
    """The value of ``param`` a recorded ``value`` is kept as; the changes made are counted in ``notes``.

    Raises:
        _Skip: If the record cannot be kept with it.
    """
    if isinstance(param, FixedParam):
        if not _matches(param.value, value):
            raise _bad(param.name, value, f"is not the space's fixed value {param.value!r}")
        return param.value
    if isinstance(param, CategoricalParam):
        return _choice(param, value)
    return _number(param, value, notes)


def _fits(param: Param, value: Any) -> bool:
    """Whether ``value``, recorded under ``param``'s name, would be kept: the test of a rename hint."""
    try:
        _kept(param, value, Counter())
    except Exception:  # a _Skip, or a hostile value: no hint, as no record
        return False
    return True


def _number(param: FloatParam | IntParam, value: Any, notes: Counter[str]) -> float | int:
    number = _as_number(param.name, value)
    number = _as_int(param, number, notes) if isinstance(param, IntParam) else float(number)
    if param.low <= number <= param.high:
        return number
    if number == 0 and param.log and isinstance(param, FloatParam):
        # weight_decay=0 (PyTorch's default), l2_regularization=0 (scikit-learn's): "none",
        # which a log range's low end stands for; skipped, a whole history of defaults was lost.
        notes[f"param {param.name!r} = 0 taken as its log range's low end"] += 1
        return float(param.low)
    if not _near(param, number):
        raise _bad(param.name, number, f"out of range [{param.low}, {param.high}]")
    notes[f"param {param.name!r} clipped into range"] += 1
    return type(number)(min(max(number, param.low), param.high))


def map_params(
    raw: Mapping[str, Any],
    space: SearchSpace,
    renames: Mapping[str, str] | None = None,
    base: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any] | None, str | None]:
    """One record's params as a config of ``space``, or ``None`` and why (see :class:`ParamMapper`).

    Example:
        >>> from autotweak.space import SearchSpace
        >>> space = SearchSpace.from_dict({"bs": {"type": "categorical", "choices": [32, 64]}})
        >>> map_params({"bs": "64"}, space), map_params({"bs": "48"}, space)
        (({'bs': 64}, None), (None, "param 'bs' = '48' is not one of the choices [32, 64]"))
    """
    return ParamMapper(space, renames, base).map(raw)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds."""
    item = getattr(value, "item", None)
    return item() if callable(item) and not isinstance(value, str | bytes) else value


def _as_number(name: str, value: Any) -> float | int:
    value = _plain(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise _bad(name, value, "must be a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(name, value, "must be a number")
    if not math.isfinite(value):
        raise _bad(name, value, "must be a finite number")
    return value


def _as_int(param: IntParam, number: float | int, notes: Counter[str]) -> int:
    if isinstance(number, float):
        if not number.is_integer():
            raise _bad(param.name, number, "must be an integer")
        number = int(number)
    off = (number - param.low) % param.step
    if off:
        notes[f"param {param.name!r} moved to its step"] += 1
        number = number - off + (param.step if 2 * off >= param.step else 0)
    return number


def _near(param: FloatParam | IntParam, number: float) -> bool:
    """Whether ``number`` is within the tolerance of the range (log scale for a log param)."""
    if param.log:
        if number <= 0 or param.low <= 0:
            return False
        low, high, x = math.log(param.low), math.log(param.high), math.log(number)
    else:
        low, high, x = float(param.low), float(param.high), float(number)
    slack = CLIP_TOLERANCE * (high - low)
    return low - slack <= x <= high + slack


def _choice(param: CategoricalParam, value: Any) -> Any:
    for choice in param.choices:
        if _matches(choice, value):
            return choice
    raise _bad(param.name, value, f"is not one of the choices {list(param.choices)}")


def _same(a: Any, b: Any) -> bool:
    """Whether two recorded values (maybe text) are the same value: ``"0.1"`` and ``0.10`` are."""
    a, b = _plain(a), _plain(b)
    try:
        return bool(a == b) or float(a) == float(b)
    except (TypeError, ValueError):
        return str(a).strip().lower() == str(b).strip().lower()


def _matches(choice: Any, value: Any) -> bool:
    """Whether a recorded value (maybe text) stands for ``choice``."""
    value = _plain(value)
    if isinstance(value, str) and not isinstance(choice, str):
        text = value.strip().lower()
        if choice is None:
            return text in _NONE
        if isinstance(choice, bool):
            return text in (_TRUE if choice else _FALSE)
        try:
            return bool(float(text) == choice)
        except (TypeError, ValueError):
            return False
    if isinstance(choice, str) and not isinstance(value, str):
        return str(value) == choice
    if isinstance(choice, bool) and isinstance(value, int) and not isinstance(value, bool):
        return value == int(choice)  # 1 and 0 for True and False, as the text "1" and "0" are
    if isinstance(choice, bool) != isinstance(value, bool):
        return False
    return bool(choice == value)
