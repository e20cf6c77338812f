"""Building a trial's config: the base config updated with the tweaks."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["merge_config"]


def merge_config(base: Mapping[str, Any], tweaks: Mapping[str, Any]) -> dict[str, Any]:
    """The base config with each tweak applied; dotted names set nested values.

    Example:
        >>> merge_config({"optim": {"lr": 0.1, "wd": 0.0}}, {"optim.lr": 0.01})
        {'optim': {'lr': 0.01, 'wd': 0.0}}
    """
    config = copy.deepcopy(dict(base))
    for name, value in tweaks.items():
        if name in config or "." not in name:
            config[name] = value
            continue
        node = config
        *parents, leaf = name.split(".")
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[leaf] = value
    return config
