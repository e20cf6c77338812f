"""The library of named, reusable search spaces in ``search_spaces/``.

A library file is YAML with ``name``, ``description``, ``params`` and optionally
``extends`` (another space's name) and ``drop`` (parameters of the parent to remove).
Users add their own folders with ``AUTOTWEAK_SPACES_PATH`` (``os.pathsep``-separated), or
load a file by its path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from autotweak._validation import Where, as_mapping, as_str, check_keys
from autotweak._yaml import read_yaml
from autotweak.exceptions import SpaceError, SpecError
from autotweak.space._space import SearchSpace

__all__ = ["available_spaces", "load_space", "reported_at", "space_from_definition", "search_paths"]

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


def load_space(name_or_path: str | os.PathLike[str], *, base_dir: Path | None = None) -> SearchSpace:
    """Load a space by library name (``"mlp"``) or from a YAML file path.

    A relative path is looked up in ``base_dir`` (an experiment file's folder) first, then
    in the working directory.

    Example:
        >>> space = load_space("hgb")
        >>> space.names[:2]
        ['learning_rate', 'max_leaf_nodes']
    """
    return _load(str(name_or_path), chain=(), base_dir=base_dir)


def _load(ref: str, chain: tuple[str, ...], base_dir: Path | None) -> SearchSpace:
    path = _resolve(ref, base_dir)
    # The same file may be spelled two ways (lib/a.yaml, ../lib/a.yaml): compare real paths.
    if any(Path(earlier).resolve() == path.resolve() for earlier in chain):
        # Raised while reading an 'extends', which _extended names as the field.
        raise SpaceError(f"must not form a cycle, got {' -> '.join((*chain, str(path)))}.")
    raw = read_yaml(path, SpaceError)
    where = Where(str(path))
    data = as_mapping(raw, where, SpaceError)
    return space_from_definition(
        data, where, chain=(*chain, str(path)), default_name=path.stem, base_dir=path.parent
    )


def space_from_definition(
    data: dict[str, Any] | Any,
    where: Where,
    *,
    chain: tuple[str, ...] = (),
    default_name: str = "",
    base_dir: Path | None = None,
) -> SearchSpace:
    """Build a space from a library-file mapping (also used for an experiment's ``tweaks``).

    ``extends`` names a library space or a YAML file, relative to ``base_dir`` (the folder of
    the file that holds the mapping) or else to the working directory.
    """
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
        parent = _extended(as_str(parent_ref, where.child("extends")), where, chain, base_dir)
        drop = data.get("drop") or []
        if not isinstance(drop, list):
            raise where.child("drop").fail("must be a list of parameter names", drop, SpaceError)
        space = parent.extend(params=data.get("params") or {}, drop=drop, name=name, where=where)
    description = str(data.get("description", space.description))
    return SearchSpace(space.params, name=name, description=description)


@contextmanager
def reported_at(
    field: str | None, source: str | None = None, cls: type[SpecError] = SpaceError
) -> Iterator[None]:
    """Report an error about a space's name or file itself at ``field`` (of ``source``).

    :func:`load_space` cannot know which field or argument named the space; an error of a
    space file's own (it has its file as source) is raised as it is.

    Example:
        >>> with reported_at("space"):  # doctest: +ELLIPSIS
        ...     load_space("hbg")
        Traceback (most recent call last):
        autotweak.exceptions.SpaceError: 'space' must name a search space of the library (...), got 'hbg'.
    """
    try:
        yield
    except SpecError as exc:
        if exc.source is not None or exc.field is not None:
            raise
        raise cls(exc.rule, source=source, field=field) from None


def _extended(ref: str, where: Where, chain: tuple[str, ...], base_dir: Path | None) -> SearchSpace:
    """The space ``extends`` names; a wrong name is reported at the ``extends`` field."""
    with reported_at(where.child("extends").field, where.source):
        return _load(ref, chain, base_dir)


def _resolve(ref: str, base_dir: Path | None) -> Path:
    if ref.endswith((".yaml", ".yml")) or os.sep in ref:
        path = Path(ref)
        # The file's own folder first, as for the objective; then the working directory, which
        # was the only place looked at before (kept so that existing specs still load).
        candidates = [path] if path.is_absolute() or base_dir is None else [base_dir / path, path]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        looked = " or ".join(repr(str(c)) for c in candidates)
        raise SpaceError(f"must name an existing search space file ({looked}), got {ref!r}.")
    spaces = available_spaces()
    if ref not in spaces:
        import difflib

        hint = difflib.get_close_matches(ref, list(spaces), n=1)
        tip = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise SpaceError(
            f"must name a search space of the library ({', '.join(sorted(spaces))}) "
            f"or a .yaml file{tip}, got {ref!r}."
        )
    return spaces[ref]
