"""The search space: an ordered set of parameters, some conditional, some fixed."""

from __future__ import annotations

import difflib
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import optuna
from optuna.distributions import BaseDistribution

from autotweak._config import flat_config
from autotweak._validation import Problems, Where, as_mapping, bad_name, check_keys
from autotweak.exceptions import SpaceError
from autotweak.space._params import (
    CategoricalParam,
    Condition,
    FixedParam,
    FloatParam,
    IntParam,
    Param,
    TunableParam,
    grid_values,
)
from autotweak.space._parse import parse_param

__all__ = ["SearchSpace"]


@dataclass(frozen=True)
class SearchSpace:
    """An ordered search space over a config.

    Order matters: a conditional parameter comes after its parent, and the unit-cube
    mapping (used by the benchmark's Sobol designs) follows the declared order of the
    tunable parameters.

    Example:
        >>> space = SearchSpace.from_dict({"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}})
        >>> space.from_unit([0.0])
        {'lr': 0.0001}
    """

    params: tuple[Param, ...]
    name: str = ""
    description: str = ""
    _by_name: dict[str, Param] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {p.name: p for p in self.params})
        self._check_structure()

    # -- construction -----------------------------------------------------------------
    @classmethod
    def from_dict(
        cls,
        raw: Mapping[str, Any],
        *,
        name: str = "",
        where: Where | None = None,
        owners: Mapping[str, str] | None = None,
    ) -> SearchSpace:
        """Build a space from ``{param_name: definition}``.

        ``owners`` names, for a parameter whose ``domain`` another space declared, that
        space (for messages); the others' is this one, ``name``.
        """
        where = where or Where()
        data = as_mapping(raw, where, SpaceError)
        problems = Problems()  # every bad parameter at once, not one per run
        parsed = []
        for key, value in data.items():
            with problems.collect():
                owner = (owners or {}).get(key, name)
                parsed.append(parse_param(key, value, where.child(key), owner=owner))
        problems.raise_any(where.source, SpaceError)
        params = tuple(parsed)
        try:
            return cls(params, name=name)
        except SpaceError as exc:
            # Structure errors name the field inside the space; place it in the file.
            field = exc.field if exc.field is None else where.child(exc.field).field
            raise SpaceError(exc.rule, source=where.source, field=field) from None

    def to_dict(self) -> dict[str, Any]:
        """The YAML form of the parameters, in order."""
        return {p.name: p.to_dict() for p in self.params}

    def _check_structure(self) -> None:
        seen: dict[str, Param] = {}
        for param in self.params:
            if param.name in seen:
                raise SpaceError(f"parameter '{param.name}' is defined twice.")
            for name in _param_names(param):  # each is an MLflow param of every trial
                rule = bad_name(name)
                if rule is not None:
                    raise SpaceError(f"{rule}, got {name!r}.", field=name)
            if param.when is not None:
                _check_condition(param, param.when, seen, later=self._by_name)
            seen[param.name] = param
        for param in self.params:
            outer = next((o for o in _prefixes(param.name) if o in self._by_name), None)
            if outer is not None:
                raise SpaceError(
                    f"sets a value inside '{outer}', which is a parameter too: a trial's '{outer}' "
                    f"would be replaced by {{'{param.name.removeprefix(outer + '.')}': ...}}. "
                    "Rename one of them.",
                    field=param.name,
                )

    # -- views ------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Param]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> Param:
        return self._by_name[name]

    @property
    def names(self) -> list[str]:
        """All parameter names, in order."""
        return [p.name for p in self.params]

    @property
    def tunable(self) -> list[TunableParam]:
        """The parameters a sampler chooses, in order (the unit-cube dimensions)."""
        return [p for p in self.params if not isinstance(p, FixedParam)]

    # -- sampling ---------------------------------------------------------------------
    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Ask ``trial`` for every active parameter; fixed values are filled in."""
        config: dict[str, Any] = {}
        for param in self.params:
            if param.when is not None and not param.when.holds(config):
                continue
            if isinstance(param, FixedParam):
                config[param.name] = param.value
            else:
                config[param.name] = param.suggest(trial)
        return config

    def from_unit(self, u: Sequence[float]) -> dict[str, Any]:
        """Map a point of the unit cube (one coordinate per tunable parameter) to a config."""
        tunable = self.tunable
        if len(u) != len(tunable):
            raise SpaceError(
                f"a unit point must have one coordinate per tunable parameter ({len(tunable)}), got {len(u)}."
            )
        values = {p.name: p.from_unit(float(x)) for p, x in zip(tunable, u, strict=True)}
        return self._activate(values)

    def to_unit(self, config: Mapping[str, Any]) -> list[float | None]:
        """The unit-cube coordinates of ``config``; ``None`` where a parameter is inactive."""
        return [p.to_unit(config[p.name]) if p.name in config else None for p in self.tunable]

    def distributions(self, config: Mapping[str, Any]) -> dict[str, BaseDistribution]:
        """Optuna distributions of the tunable parameters active in ``config``."""
        return {p.name: p.distribution() for p in self.tunable if p.name in config}

    def grid(self, n_points: int) -> dict[str, list[Any]]:
        """A grid for Optuna's ``GridSampler``; conditional spaces are refused."""
        if any(p.when is not None for p in self.params):
            raise SpaceError("the grid sampler cannot search a space with conditional parameters.")
        return {p.name: list(grid_values(p, n_points)) for p in self.tunable}

    def active(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Keep only the parameters of ``config`` that are active, in space order."""
        return self._activate({k: v for k, v in config.items() if k in self})

    def inactive(self, values: Mapping[str, Any]) -> list[str]:
        """Names of the conditional parameters whose condition ``values`` does not meet, in order.

        Example:
            >>> space = SearchSpace.from_dict({
            ...     "optimizer": {"type": "categorical", "choices": ["adamw", "sgd"]},
            ...     "momentum": {"type": "float", "low": 0.5, "high": 0.99, "when": {"optimizer": "sgd"}},
            ... })
            >>> space.inactive({"optimizer": "adamw", "momentum": 0.9})
            ['momentum']
        """
        active = self._activate(values)
        return [p.name for p in self.params if p.when is not None and not p.when.holds(active)]

    def _activate(self, values: Mapping[str, Any]) -> dict[str, Any]:
        config: dict[str, Any] = {}
        for param in self.params:
            if param.when is not None and not param.when.holds(config):
                continue
            if isinstance(param, FixedParam):
                config[param.name] = param.value
            elif param.name in values:
                config[param.name] = values[param.name]
        return config

    def invalid(self, config: Mapping[str, Any]) -> list[str]:
        """Names of active parameters whose value in ``config`` is missing or out of range."""
        active = self._activate(config)  # a condition reads the fixed values too, which config may lack
        wrong = [name for name, value in active.items() if not self[name].contains(value)]
        wrong += [p.name for p in self.tunable if p.name not in config and self._is_active(p, active)]
        return wrong

    def _is_active(self, param: Param, config: Mapping[str, Any]) -> bool:
        return param.when is None or param.when.holds(config)

    # -- extension --------------------------------------------------------------------
    def extend(
        self,
        *,
        params: Mapping[str, Any] | None = None,
        drop: Iterable[str] = (),
        name: str | None = None,
        where: Where | None = None,
    ) -> SearchSpace:
        """A new space: ``params`` added or overriding (partially) existing ones, ``drop`` removed.

        An override may give only some keys, e.g. ``{"lr": {"high": 0.01}}`` narrows a range.
        """
        where = where or Where()
        dropped = list(drop)
        for i, key in enumerate(dropped):
            if key not in self:
                raise (
                    where.child("drop")
                    .child(i)
                    .fail(f"must name a parameter of the space ({', '.join(self.names)})", key, SpaceError)
                )
        merged: dict[str, Any] = {p.name: p.to_dict() for p in self.params if p.name not in dropped}
        replaced: set[str] = set()  # given whole, with 'type' (or as a bare value)
        for key, value in as_mapping(params or {}, where.child("params"), SpaceError).items():
            if isinstance(value, Mapping) and "type" not in value:
                if key not in merged:
                    raise self._not_a_parameter(key, where.child("params").child(key), dropped)
                if "domain" in value:
                    raise self._fixed_domain(key, where.child("params").child(key).child("domain"))
                check_keys(value, where.child("params").child(key), allowed=_OVERRIDABLE, cls=SpaceError)
                merged[key] = {**merged[key], **value}
            else:
                if isinstance(value, Mapping) and key in merged:
                    self._check_whole(key, value, where.child("params").child(key))
                merged[key] = value
                replaced.add(key)
        orphans = [k for k, v in merged.items() if isinstance(v, Mapping) and _parent(v) in dropped]
        if orphans:
            raise where.child("drop").fail(
                f"cannot drop a parent of conditional parameters {orphans}", dropped, SpaceError
            )
        owners = {  # a domain kept from this space is said to be its declarer's
            key: param.domain.owner
            for key, param in self._by_name.items()
            if param.domain is not None and key in merged and key not in replaced
        }
        space = SearchSpace.from_dict(
            merged, name=self.name if name is None else name, where=where.child("params"), owners=owners
        )
        return replace(space, description=self.description)

    def _fixed_domain(self, key: str, where: Where) -> SpaceError:
        """An override of ``domain``: what a parameter can take at all is no part of what a study searches."""
        domain = self[key].domain
        declared = f"declared by space '{domain.owner}'" if domain and domain.owner else "declared with it"
        return SpaceError(
            f"cannot be overridden: it is the values '{key}' can take at all ({declared}); "
            f"give '{key}' whole, with 'type', to define it anew",
            source=where.source,
            field=where.field,
        )

    def _check_whole(self, key: str, value: Mapping[str, Any], where: Where) -> None:
        """Refuse a definition of ``key`` with ``type`` that lacks a key its type requires.

        Such a definition replaces the parameter whole, so it was most likely meant as an
        override (``channels: {type: int, high: 32}``): the error says so.
        """
        missing = [k for k in _REQUIRED.get(str(value.get("type")), ()) if k not in value]
        if missing:
            owner = f"'{self.name}'" if self.name else "the extended space"
            raise SpaceError(
                f"replaces the parameter '{key}' of {owner} whole when it gives 'type', so it must give "
                f"{' and '.join(missing)} too, got {dict(value)!r}; without 'type' it overrides only the "
                "keys it gives.",
                source=where.source,
                field=where.field,
            )

    def _not_a_parameter(self, key: str, where: Where, dropped: list[str]) -> SpaceError:
        """An override (no ``type``) of a name this space lacks: most likely a typo."""
        import difflib

        owner = f"'{self.name}'" if self.name else "the extended space"
        hint = difflib.get_close_matches(key, [n for n in self.names if n not in dropped], n=1)
        tip = f" (did you mean '{hint[0]}'?)" if hint else ""
        why = " (it is dropped)" if key in dropped else ""
        return SpaceError(
            f"is not a parameter of {owner}{why}{tip}; a new parameter needs 'type'",
            source=where.source,
            field=where.field,
        )


def _prefixes(name: str) -> list[str]:
    """The dotted names that contain ``name``: ``a.b.c`` -> ``a``, ``a.b``."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _check_condition(
    param: Param, when: Condition, seen: Mapping[str, Param], *, later: Container[str]
) -> None:
    """``when`` must name a parameter declared before ``param``, by values it can take."""
    parent = seen.get(when.parent)
    if parent is None:
        earlier = ", ".join(seen) or "none"
        if when.parent == param.name:
            after = ", the parameter itself."
        else:
            after = ", which is declared after it." if when.parent in later else "."
        raise SpaceError(
            f"must name a parameter declared before '{param.name}' (declared before it: {earlier}), "
            f"got '{when.parent}'" + after,
            field=f"{param.name}.when",
        )
    bad = [v for v in when.values if not parent.contains(v)]
    if not bad:
        return
    where = f"{param.name}.when.{parent.name}"
    if not isinstance(parent, CategoricalParam):
        raise SpaceError(
            f"must be values '{parent.name}' can take ({_range_of(parent)}), got {bad}: "
            f"'{param.name}' would never be tried (drop it: tweaks.drop: [{param.name}]).",
            field=where,
        )
    shown = [str(c) for c in parent.choices]
    hints = [m for v in bad for m in difflib.get_close_matches(str(v), shown, n=1)]
    tip = (
        f" (did you mean {', '.join(repr(h) for h in hints)}?)"
        if hints
        else (
            f" (Narrowed '{parent.name}' to leave {bad} out? Drop '{param.name}' too: "
            f"tweaks.drop: [{param.name}].)"
        )
    )
    raise SpaceError(
        f"must be choices of '{parent.name}' ({list(parent.choices)}), got {bad}.{tip}", field=where
    )


def _range_of(param: Param) -> str:
    """A numeric or fixed parameter's values, for an error message."""
    if isinstance(param, IntParam | FloatParam):
        stepped = param.step and not (isinstance(param, IntParam) and param.step == 1)
        return f"{param.low:g} to {param.high:g}" + (f" in steps of {param.step:g}" if stepped else "")
    return f"only {getattr(param, 'value', None)!r}"


_REQUIRED = {  # the keys a definition of each type must give
    "float": ("low", "high"),
    "int": ("low", "high"),
    "categorical": ("choices",),
    "fixed": ("value",),
}
_OVERRIDABLE = ("low", "high", "log", "step", "choices", "value", "when", "description")


def _parent(definition: Mapping[str, Any]) -> str | None:
    when = definition.get("when")
    if isinstance(when, Mapping) and len(when) == 1:
        return str(next(iter(when)))
    return None


def _param_names(param: Param) -> list[str]:
    """The names of the MLflow params ``param`` gives a trial: a fixed mapping's flattened keys too."""
    if isinstance(param, FixedParam) and isinstance(param.value, Mapping):
        return [param.name, *flat_config({param.name: param.value})]
    return [param.name]
