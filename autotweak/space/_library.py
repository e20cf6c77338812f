"""The library of named, reusable search spaces in ``search_spaces/``.

A library file is YAML with ``name``, ``description``, ``params`` and optionally
``extends`` (another space's name) and ``drop`` (parameters of the parent to remove).
Users add their own folders with ``AUTOTWEAK_SPACES_PATH`` (``os.pathsep``-separated), or
load a file by its path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from autotweak._validation import Where, as_mapping, as_str, check_keys
from autotweak.exceptions import SpaceError
from autotweak.space._space import SearchSpace

__all__ = ["available_spaces", "load_space", "space_from_definition", "search_paths"]

_FILE_KEYS = ("name", "description", "extends", "params", "drop")


def search_paths() -> list[Path]:
    """Folders searched for named spaces: user folders first, then the shipped library."""
    paths = [Path(p) for p in os.environ.get("AUTOTWEAK_SPACES_PATH", "").split(os.pathsep) if p]
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_data" / "search_spaces", here.parent / "search_spaces"):
        if candidate.is_dir():
            paths.append(candidate)
    return paths


def available_spaces() -> dict[str, Path]:
    """Every named space that can be loaded, mapped to its file (first folder wins)."""
    found: dict[str, Path] = {}
    for folder in search_paths():
        for path in sorted(folder.glob("*.yaml")):
            found.setdefault(path.stem, path)
    return found


def load_space(name_or_path: str | os.PathLike[str]) -> SearchSpace:
    """Load a space by library name (``"mlp"``) or from a YAML file path.

    Example:
        >>> space = load_space("hgb")
        >>> space.names[:2]
        ['learning_rate', 'max_leaf_nodes']
    """
    return _load(str(name_or_path), chain=())


def _load(ref: str, chain: tuple[str, ...]) -> SearchSpace:
    path = _resolve(ref)
    if str(path) in chain:
        raise SpaceError(f"'extends' must not form a cycle, got {' -> '.join((*chain, str(path)))}.")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpaceError(f"is not valid YAML: {exc}", source=str(path)) from None
    where = Where(str(path))
    data = as_mapping(raw, where, SpaceError)
    return space_from_definition(data, where, chain=(*chain, str(path)), default_name=path.stem)


def space_from_definition(
    data: dict[str, Any] | Any,
    where: Where,
    *,
    chain: tuple[str, ...] = (),
    default_name: str = "",
) -> SearchSpace:
    """Build a space from a library-file mapping (also used for an experiment's ``tweaks``)."""
    data = as_mapping(data, where, SpaceError)
    check_keys(data, where, allowed=_FILE_KEYS, cls=SpaceError)
    name = str(data.get("name", default_name))
    parent_ref = data.get("extends")
    if parent_ref is None:
        if data.get("drop"):
            raise where.child("drop").fail(
                "needs 'extends' to name a space to drop from", data["drop"], SpaceError
            )
        space = SearchSpace.from_dict(data.get("params") or {}, name=name, where=where.child("params"))
    else:
        parent = _load(as_str(parent_ref, where.child("extends")), chain)
        drop = data.get("drop") or []
        if not isinstance(drop, list):
            raise where.child("drop").fail("must be a list of parameter names", drop, SpaceError)
        space = parent.extend(params=data.get("params") or {}, drop=drop, name=name, where=where)
    description = str(data.get("description", space.description))
    return SearchSpace(space.params, name=name, description=description)


def _resolve(ref: str) -> Path:
    if ref.endswith((".yaml", ".yml")) or os.sep in ref:
        path = Path(ref)
        if not path.is_file():
            raise SpaceError(f"search space file {ref!r} does not exist.")
        return path
    spaces = available_spaces()
    if ref not in spaces:
        import difflib

        hint = difflib.get_close_matches(ref, list(spaces), n=1)
        tip = f" Did you mean '{hint[0]}'?" if hint else ""
        raise SpaceError(
            f"a search space name must be one of {', '.join(sorted(spaces))} "
            f"(or a .yaml path), got {ref!r}.{tip}"
        )
    return spaces[ref]
