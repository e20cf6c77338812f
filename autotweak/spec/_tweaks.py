"""The ``tweaks`` field: a library space's name, a space file, or the space inline (flat or structured)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autotweak._validation import Where, as_mapping, check_keys
from autotweak.exceptions import SpaceError, SpecError
from autotweak.space import SearchSpace, load_space, space_from_definition
from autotweak.space._library import reported_at

__all__ = ["parse_tweaks", "spec_dir"]

# The keys of the structured form of ``tweaks`` (as in a library space file).
_DEFINITION_KEYS = ("name", "description", "extends", "params", "drop")
# How close a key of the flat form must be to one of those to be taken for its misspelling:
# 'drops', 'parmas', 'extnds', 'nmae' are; 'dropout' (0.73) is not.
_TYPO_CUTOFF = 0.75


def spec_dir(where: Where) -> Path | None:
    """The folder of the spec file, where the files it names are looked for first."""
    spec_file = Path(where.source) if where.source else None
    return spec_file.resolve().parent if spec_file is not None and spec_file.is_file() else None


def parse_tweaks(raw: Any, where: Where) -> SearchSpace:
    """The search space ``tweaks`` names or defines (flat or structured form)."""
    # Space files are found next to the spec first, as the objective's file is.
    base_dir = spec_dir(where)
    if isinstance(raw, str):
        with reported_at(where.field, where.source, SpecError):
            return load_space(raw, base_dir=base_dir)
    data = as_mapping(raw, where)
    if any(key in _DEFINITION_KEYS and not _is_param_definition(data[key]) for key in data):
        _check_structured(data, where)
        return space_from_definition(data, where, base_dir=base_dir)
    _check_flat(data, where)
    return SearchSpace.from_dict(data, where=where)


def _is_param_definition(value: Any) -> bool:
    """Whether ``value`` reads as one parameter's definition (a mapping with a ``type``)."""
    return isinstance(value, Mapping) and "type" in value


def _check_structured(data: Mapping[str, Any], where: Where) -> None:
    """The structured form (``extends``, ``params``, ``drop``...) takes no other key.

    Any other key was either misspelled or is a parameter that belongs under ``params``;
    taking it for a fixed parameter would run a study without the search it declares.
    """
    structural = [k for k in _DEFINITION_KEYS if k in data and not _is_param_definition(data[k])]
    for key, value in data.items():
        if key != "params" and _is_param_definition(value):
            what = "must not define a parameter" if key in _DEFINITION_KEYS else "is not a known key"
            raise SpaceError(
                f"{what}; with {', '.join(repr(k) for k in structural)}, parameters go under 'params'",
                source=where.source,
                field=where.child(key).field,
            )
    check_keys(data, where, allowed=_DEFINITION_KEYS, cls=SpaceError)


def _check_flat(data: Mapping[str, Any], where: Where) -> None:
    """In the flat form every key is a parameter; one spelled like a structural key is a typo.

    A parameter of such a name is still possible, given as a definition with a ``type``.
    """
    for key, value in data.items():
        if _is_param_definition(value):
            continue
        hint = difflib.get_close_matches(key, _DEFINITION_KEYS, n=1, cutoff=_TYPO_CUTOFF)
        if hint:
            raise SpaceError(
                f"is not a known key; did you mean '{hint[0]}'? (a parameter named {key!r} "
                "is given as a definition with a 'type', such as {type: fixed, value: ...})",
                source=where.source,
                field=where.child(key).field,
            )
