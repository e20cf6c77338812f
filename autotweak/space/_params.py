"""Parameter kinds of a search space and their mapping to Optuna and to the unit cube."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalChoiceType,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from autotweak.space._domain import Domain

__all__ = ["Condition", "FloatParam", "IntParam", "CategoricalParam", "FixedParam", "Param", "on_step"]


def _scale(low: float, high: float, log: bool, u: float) -> float:
    """The point at ``u`` in [0, 1] between ``low`` and ``high``, on a log scale if asked."""
    return low * (high / low) ** u if log else low + (high - low) * u


def _unscale(low: float, high: float, log: bool, value: float) -> float:
    """The inverse of :func:`_scale` (0 for a range of one point)."""
    if high == low:
        return 0.0
    return math.log(value / low) / math.log(high / low) if log else (value - low) / (high - low)


_STEP_RTOL = 1e-9


def on_step(offset: float, step: float) -> bool:
    """Whether ``offset`` is a whole number of ``step``: exactly for ints, up to rounding for floats."""
    if isinstance(offset, int) and isinstance(step, int):
        return offset % step == 0
    steps = offset / step
    return abs(steps - round(steps)) <= _STEP_RTOL * max(1.0, abs(steps))


@dataclass(frozen=True)
class Condition:
    """A parameter is active only when ``parent`` took one of ``values``."""

    parent: str
    values: tuple[Any, ...]

    def holds(self, config: Mapping[str, Any]) -> bool:
        """Whether the condition is met by the values chosen so far."""
        return self.parent in config and config[self.parent] in self.values

    def to_dict(self) -> dict[str, Any]:
        """The YAML form, ``{parent: value}`` or ``{parent: [values]}``."""
        values = self.values[0] if len(self.values) == 1 else list(self.values)
        return {self.parent: values}


@dataclass(frozen=True)
class _Base:
    name: str
    when: Condition | None = field(default=None, kw_only=True)
    description: str = field(default="", kw_only=True)
    # The values it can take at all; no part of what is searched, so not of equality either.
    domain: Domain | None = field(default=None, kw_only=True, compare=False)

    @property
    def tunable(self) -> bool:
        return True

    def _common(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.when is not None:
            out["when"] = self.when.to_dict()
        if self.domain is not None:
            out["domain"] = self.domain.to_dict()
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True)
class FloatParam(_Base):
    """A real-valued parameter in ``[low, high]``, on a log scale or in steps if asked."""

    low: float
    high: float
    log: bool = False
    step: float | None = None

    def distribution(self) -> BaseDistribution:
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def suggest(self, trial: optuna.Trial) -> float:
        return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)

    def from_unit(self, u: float) -> float:
        value = _scale(self.low, self.high, self.log, u)
        if self.step is not None:
            value = self.low + round((value - self.low) / self.step) * self.step
        return min(max(value, self.low), self.high)

    def to_unit(self, value: Any) -> float:
        return _unscale(self.low, self.high, self.log, float(value))

    def contains(self, value: Any) -> bool:
        if not isinstance(value, int | float) or not self.low <= float(value) <= self.high:
            return False
        return self.step is None or on_step(float(value) - self.low, self.step)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "float", "low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out | self._common()


@dataclass(frozen=True)
class IntParam(_Base):
    """An integer parameter in ``[low, high]``; unit values are rounded half up."""

    low: int
    high: int
    log: bool = False
    step: int = 1

    def distribution(self) -> BaseDistribution:
        return IntDistribution(self.low, self.high, log=self.log, step=self.step)

    def suggest(self, trial: optuna.Trial) -> int:
        return trial.suggest_int(self.name, self.low, self.high, log=self.log, step=self.step)

    def from_unit(self, u: float) -> int:
        raw = _scale(self.low, self.high, self.log, u)
        steps = math.floor((raw - self.low) / self.step + 0.5)
        return int(min(max(self.low + steps * self.step, self.low), self.high))

    def to_unit(self, value: Any) -> float:
        return _unscale(self.low, self.high, self.log, float(value))

    def contains(self, value: Any) -> bool:
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and self.low <= value <= self.high
            and (value - self.low) % self.step == 0
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "int", "low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step != 1:
            out["step"] = self.step
        return out | self._common()


@dataclass(frozen=True)
class CategoricalParam(_Base):
    """A choice among ``choices``; unit value ``u`` picks index ``min(int(u * k), k - 1)``."""

    choices: tuple[CategoricalChoiceType, ...]

    def distribution(self) -> BaseDistribution:
        return CategoricalDistribution(self.choices)

    def suggest(self, trial: optuna.Trial) -> Any:
        return trial.suggest_categorical(self.name, self.choices)

    def from_unit(self, u: float) -> Any:
        k = len(self.choices)
        return self.choices[min(int(u * k), k - 1)]

    def to_unit(self, value: Any) -> float:
        return (self.choices.index(value) + 0.5) / len(self.choices)

    def contains(self, value: Any) -> bool:
        return value in self.choices

    def to_dict(self) -> dict[str, Any]:
        return {"type": "categorical", "choices": list(self.choices)} | self._common()


@dataclass(frozen=True)
class FixedParam(_Base):
    """A value that is set, not searched: it appears in every config, never in the sampler."""

    value: Any

    @property
    def tunable(self) -> bool:
        return False

    def contains(self, value: Any) -> bool:
        return bool(value == self.value)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "fixed", "value": self.value} | self._common()


Param = FloatParam | IntParam | CategoricalParam | FixedParam
TunableParam = FloatParam | IntParam | CategoricalParam


def grid_values(param: TunableParam, n_points: int) -> Sequence[Any]:
    """Evenly spaced values of ``param`` for a grid (all choices for a categorical)."""
    if isinstance(param, CategoricalParam):
        return list(param.choices)
    if n_points == 1:
        return [param.from_unit(0.5)]
    values = [param.from_unit(i / (n_points - 1)) for i in range(n_points)]
    return list(dict.fromkeys(values))
