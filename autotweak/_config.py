"""Building a trial's config: the base config updated with the tweaks.

Dotted names set nested values, in the base as in the tweaks: ``optim.lr: 0.01`` and
``optim: {lr: 0.01}`` are the same config.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["base_values", "merge_config", "nested_config"]


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

    Raises:
        ValueError: With ``strict``, if a dotted key goes through a value that is not a
            mapping (``{"optim": 5, "optim.lr": 0.1}``); without it, that value is replaced.

    Example:
        >>> nested_config({"optim.lr": 0.1, "optim": {"wd": 0.0}, "epochs": 3})
        {'optim': {'lr': 0.1, 'wd': 0.0}, 'epochs': 3}
    """
    out: dict[str, Any] = {}
    for key, value in config.items():
        value = nested_config(value, strict=strict) if isinstance(value, Mapping) else copy.deepcopy(value)
        _put(out, str(key).split("."), value, strict=strict, merge=True)
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


def _put(node: dict[str, Any], path: list[str], value: Any, *, strict: bool, merge: bool) -> None:
    """Set ``value`` at ``path``; with ``merge``, a mapping joins the mapping already there."""
    *parents, leaf = path
    for depth, part in enumerate(parents):
        child = node.get(part)
        if not isinstance(child, dict):
            if child is not None and strict:
                inside = ".".join(parents[: depth + 1])
                raise ValueError(f"'{'.'.join(path)}' sets a value inside '{inside}', which is {child!r}")
            child = {}
            node[part] = child
        node = child
    old = node.get(leaf)
    if merge and isinstance(old, dict) and isinstance(value, dict):
        for key, item in value.items():
            _put(old, [key], item, strict=strict, merge=True)
    else:
        node[leaf] = value
