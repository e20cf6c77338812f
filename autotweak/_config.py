"""Building a trial's config: the base config updated with the tweaks.

Dotted names set nested values, in the base as in the tweaks: ``optim.lr: 0.01`` and
``optim: {lr: 0.01}`` are the same config.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["base_values", "flat_config", "merge_config", "nested_config", "without"]


def merge_config(base: Mapping[str, Any], tweaks: Mapping[str, Any]) -> dict[str, Any]:
    """The base config with each tweak applied; dotted names set nested values.

    Example:
        >>> merge_config({"optim": {"lr": 0.1, "wd": 0.0}}, {"optim.lr": 0.01})
        {'optim': {'lr': 0.01, 'wd': 0.0}}
        >>> merge_config({"optim.lr": 0.1, "optim.wd": 0.0}, {"optim.lr": 0.01})
        {'optim': {'lr': 0.01, 'wd': 0.0}}
    """
    config = nested_config(base, strict=False)
    for name, value in tweaks.items():
        _put(config, name.split("."), copy.deepcopy(value), strict=False, merge=False)
    return config


def nested_config(config: Mapping[str, Any], *, strict: bool = True) -> dict[str, Any]:
    """A deep copy of ``config`` with every dotted key expanded into nested mappings.

    The same path given nested and dotted merges, as long as no value is given twice.

    Raises:
        ValueError: With ``strict``, if a value is given twice, in whatever order and
            spelling (``{"optim.lr": 0.1, "optim": {"lr": 0.2}}``), or a value is set inside
            one that is not a mapping (``{"optim": 5, "optim.lr": 0.1}``); without it, the
            later value replaces the earlier.

    Example:
        >>> nested_config({"optim.lr": 0.1, "optim": {"wd": 0.0}, "epochs": 3})
        {'optim': {'lr': 0.1, 'wd': 0.0}, 'epochs': 3}
    """
    return _expand(config, strict=strict, at=())


def flat_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``config`` with nested mappings flattened to dotted names; an empty mapping stays a value.

    These are the names of a trial's MLflow params.

    Example:
        >>> flat_config({"optim": {"lr": 0.1, "betas": [0.9, 0.99]}, "width": 64})
        {'optim.lr': 0.1, 'optim.betas': [0.9, 0.99], 'width': 64}
    """
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flat_config(value, f"{name}."))
        else:
            out[name] = value
    return out


def base_values(base: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The values ``base`` sets for the (dotted) parameter ``names``, flat or nested.

    Example:
        >>> base_values({"optim": {"lr": 0.1}, "width": 64}, ["optim.lr", "width", "depth"])
        {'optim.lr': 0.1, 'width': 64}
    """
    tree = nested_config(base, strict=False)
    found: dict[str, Any] = {}
    for name in names:
        node: Any = tree
        for part in name.split("."):
            if not isinstance(node, Mapping) or part not in node:
                break
            node = node[part]
        else:
            found[name] = node
    return found


def without(config: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """:func:`nested_config` of ``config`` without the values of the (dotted) ``names``.

    A mapping left empty by a removal goes too; one that was empty already stays.

    Example:
        >>> without({"optim": {"name": "adamw", "momentum": 0.9}, "sgd.nesterov": True},
        ...         ["optim.momentum", "sgd.nesterov"])
        {'optim': {'name': 'adamw'}}
    """
    tree = nested_config(config, strict=False)
    for name in names:
        _remove(tree, name.split("."))
    return tree


def _remove(node: dict[str, Any], path: list[str]) -> None:
    """Remove the value at ``path`` and the mappings that removal leaves empty."""
    head, *rest = path
    if head not in node:
        return
    if rest:
        child = node[head]
        if not isinstance(child, dict) or not child:
            return
        _remove(child, rest)
        if child:
            return
    del node[head]


def _expand(config: Mapping[str, Any], *, strict: bool, at: tuple[str, ...]) -> dict[str, Any]:
    """:func:`nested_config` of the mapping found at the path ``at``."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        path = str(key).split(".")
        if isinstance(value, Mapping):
            value = _expand(value, strict=strict, at=(*at, *path))
        else:
            value = copy.deepcopy(value)
        _put(out, path, value, strict=strict, merge=True, at=at)
    return out


def _put(
    node: dict[str, Any],
    path: list[str],
    value: Any,
    *,
    strict: bool,
    merge: bool,
    at: tuple[str, ...] = (),
) -> None:
    """Set ``value`` at ``path``; with ``merge``, a mapping joins the mapping already there.

    With ``strict``, a value already there is a conflict, unless both are mappings to merge;
    ``at`` is where ``node`` is, for the message.
    """
    *parents, leaf = path
    for depth, part in enumerate(parents):
        child = node.get(part)
        if not isinstance(child, dict):
            if strict and part in node:
                inside = ".".join((*at, *parents[: depth + 1]))
                raise ValueError(f"'{_dotted(at, path)}' sets a value inside '{inside}', which is {child!r}")
            child = {}
            node[part] = child
        node = child
    if leaf not in node:
        node[leaf] = value
        return
    old = node[leaf]
    if merge and isinstance(old, dict) and isinstance(value, dict):
        for key, item in value.items():
            _put(old, [key], item, strict=strict, merge=True, at=(*at, *path))
    elif strict:
        raise ValueError(_conflict(_dotted(at, path), old, value))
    else:
        node[leaf] = value


def _dotted(at: tuple[str, ...], path: list[str]) -> str:
    return ".".join((*at, *path))


def _conflict(name: str, old: Any, new: Any) -> str:
    """Why ``old`` and ``new``, both given for ``name``, cannot both be kept."""
    if isinstance(old, dict) or isinstance(new, dict):
        inner, outer = (old, new) if isinstance(old, dict) else (new, old)
        return f"'{name}' is given as {outer!r} and also has values set inside it ({inner!r})"
    return f"'{name}' is given twice ({old!r} and {new!r})"
