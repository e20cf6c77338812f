"""A conditional tweak on the ablation path moves with its parent (``momentum`` with ``optimizer: sgd``).

The step that switches a parent on brings the tweaks it activates at the best's values, and
the step that switches it off takes away the ones it deactivates, so that every config of
the path is one a trial can run. A base config's value of a tweak its own values leave
inactive (``momentum`` with ``optimizer: adamw``) is none of its tweaks, as in its trial's config.

A condition reads the fixed tweaks too (``optimizer: sgd`` given as a value): Optuna's params
lack them, as they lack every value that is set rather than searched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import optuna

from autotweak._config import base_values
from autotweak.engine._study import ATTR
from autotweak.exceptions import AutotweakError
from autotweak.space import SearchSpace

__all__ = ["activate", "base_tweaks", "space_of", "switch"]

_log = logging.getLogger(__name__)


def base_tweaks(study: optuna.Study, base: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The base config's values of the study's tweaks, without those its own values leave inactive.

    ``momentum: 0.9`` in a base with ``optimizer: adamw`` is no value of the base config's:
    its trial runs without it. ``names`` are read as they are without a spec to say the tweaks.
    """
    space = space_of(study)
    if space is None:
        return base_values(base, names)
    active = space.active(base_values(base, space.names))
    return {p.name: active[p.name] for p in space.tunable if p.name in active}


def space_of(study: optuna.Study) -> SearchSpace | None:
    """The study's tweaks as a space; ``None`` for a study without a spec, or one not readable."""
    tweaks = (study.user_attrs.get(ATTR.SPEC) or {}).get("tweaks")
    params = tweaks.get("params") if isinstance(tweaks, Mapping) else None
    if not isinstance(params, Mapping):
        return None
    try:
        return SearchSpace.from_dict(params)
    except AutotweakError:  # a spec from another version of autotweak: read it unconditioned
        _log.debug("the study's tweaks cannot be read; the report ignores their conditions", exc_info=True)
        return None


def activate(config: Mapping[str, Any], space: SearchSpace | None) -> dict[str, Any]:
    """``config`` without the tweaks whose condition it does not meet (a trial's params lack them).

    The conditions read the space's fixed values too; a name the space lacks is kept, and
    without a space (a study without a spec) every one is.
    """
    if space is None:
        return dict(config)
    active = space.active(config)
    return {k: v for k, v in config.items() if k in active or k not in space}


def switch(
    config: Mapping[str, Any], key: str, source: Mapping[str, Any], space: SearchSpace | None
) -> dict[str, Any]:
    """``config`` with ``key`` at ``source``'s value; the tweaks that this switches on come from ``source``.

    A tweak it switches off leaves; one active before and after keeps its value (it is a step
    of its own).
    """
    new = {**config, key: source[key]}
    if space is None:
        return new
    brought = {p.name: source[p.name] for p in space.tunable if p.when is not None and p.name in source}
    active = space.active({**brought, **new})  # new's values first, the conditional rest from source
    out = {k: v for k, v in new.items() if k in active or k not in space}
    return out | {k: v for k, v in active.items() if k in brought and k not in out}
