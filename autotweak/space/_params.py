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

__all__ = ["Condition", "FloatParam", "IntParam", "CategoricalParam", "FixedParam", "Param"]


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

    @property
    def tunable(self) -> bool:
        return True

    def _common(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.when is not None:
            out["when"] = self.when.to_dict()
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
        if self.log:
            value = self.low * (self.high / self.low) ** u
        else:
            value = self.low + (self.high - self.low) * u
        if self.step is not None:
            value = self.low + round((value - self.low) / self.step) * self.step
        return min(max(value, self.low), self.high)

    def to_unit(self, value: Any) -> float:
        if self.log:
            return math.log(float(value) / self.low) / math.log(self.high / self.low)
        return (float(value) - self.low) / (self.high - self.low)

    def contains(self, value: Any) -> bool:
        return isinstance(value, int | float) and self.low <= float(value) <= self.high

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
        if self.log:
            raw = self.low * (self.high / self.low) ** u
        else:
            raw = self.low + (self.high - self.low) * u
        steps = math.floor((raw - self.low) / self.step + 0.5)
        return int(min(max(self.low + steps * self.step, self.low), self.high))

    def to_unit(self, value: Any) -> float:
        if self.log:
            return math.log(float(value) / self.low) / math.log(self.high / self.low)
        return (float(value) - self.low) / (self.high - self.low)

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
