"""Finding a meta-model for a space: a file the user names, or one shipped in ``meta/``.

A model fits a space when both have the same tunable parameters, by name and kind
(float, int, categorical), in any order. Its candidates that fall outside the new space
(a narrowed range, a dropped choice) are left out, so a model of the library's ``hgb``
space also serves a user's space that ``extends: hgb``, narrows a range or lists the
parameters in another order. A space whose ranges leave out every candidate of a model that
fits its parameters is not served by it; why, naming the parameters at fault, is said by
the meta sampler once per study (see :func:`resolve_with_reason`).

Example:
    >>> from autotweak import load_space
    >>> model = resolve_meta_model("auto", load_space("hgb"))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from autotweak._locations import model_files
from autotweak.meta._fit import unit_points
from autotweak.meta._model import MetaModel, MetaModelError, load_meta_model
from autotweak.space import CategoricalParam, FloatParam, IntParam, SearchSpace

__all__ = [
    "META_SUFFIX",
    "found_at",
    "model_paths",
    "resolve_meta_model",
    "resolve_with_reason",
    "restrict",
    "why_none_fits",
    "why_unserved",
]

_log = logging.getLogger(__name__)

META_SUFFIX = ".meta.npz"

_said: set[tuple[str, int]] = set()  # the models this process has said it uses
_warned: set[str] = set()  # the spaces said to have no model that fits them


def model_paths() -> list[Path]:
    """Meta-model files found: ``$AUTOTWEAK_META_PATH`` folders first, then the shipped ones."""
    return model_files(META_SUFFIX)


def resolve_meta_model(model: str | os.PathLike[str] | None, space: SearchSpace) -> MetaModel | None:
    """The meta-model for ``space``.

    Args:
        model: A model file; ``"auto"`` for the first found model (see :func:`model_paths`)
            that fits the space; ``None`` or ``"none"`` for no model.
        space: The study's search space. (A spec's relative model file is made absolute
            when the spec is read, if it is next to the spec: see ``autotweak.spec``.)

    Returns:
        The model, restricted to ``space``; ``None`` if no model is wanted or found. When
        a found model fits the space's parameters but none of its candidates lies inside
        its ranges, a warning says which parameter and ranges (once per space and process).

    Raises:
        MetaModelError: If a named file does not fit ``space`` or cannot be read.
    """
    fitted, unserved = resolve_with_reason(model, space)
    said = f"unserved {space.to_dict()!r}"
    if unserved is not None and said not in _warned:
        _warned.add(said)
        _log.warning(
            "meta-learner: %s; none is returned (a MetaSampler given no model runs its base sampler alone)",
            unserved,
        )
    return fitted


def resolve_with_reason(
    model: str | os.PathLike[str] | None, space: SearchSpace
) -> tuple[MetaModel | None, str | None]:
    """:func:`resolve_meta_model`, and why a found model that fits the space's parameters does not serve it.

    The reason (no candidate of the model lies inside the space) is not logged here: the
    meta sampler says it once per study (a study resolves its model in every process),
    with the sampler that runs instead. A space no found model fits is said here, at INFO,
    once per process.
    """
    if model is None or str(model) == "none":
        return None, None
    if str(model) != "auto":
        return _named(str(model), Path(model), space), None
    fitted, unserved = _search(space, "the space")
    said = repr(space.to_dict())
    if fitted is None and unserved is None and said not in _warned:
        _warned.add(said)  # a study resolves it several times
        _log.info("meta-learner: no meta-model fits the space; the meta sampler runs its base sampler alone")
    return fitted, unserved


def why_unserved(space: SearchSpace, what: str) -> str | None:
    """Why no found model serves ``space`` when one fits its parameters, else ``None``.

    Args:
        space: The study's search space.
        what: How to name the space in the reason ("the space of exp.yaml").
    """
    fitted, unserved = _search(space, what)
    return None if fitted is not None else unserved


def why_none_fits(space: SearchSpace) -> str | None:
    """What keeps the found model nearest to ``space`` out: ``the hgb meta-model needs max_features``.

    The nearest model reads the most of the space's parameters, and at least half of its
    own and of the space's: a space that extends a shipped one and drops or adds a
    parameter, or gives one another kind. ``None`` where no model is that near, where one
    fits the parameters (its candidates may still all lie outside: see :func:`why_unserved`),
    or where the space has conditional parameters.
    """
    if any(p.when is not None for p in space.params):  # no model serves one: said as such
        return None
    mine = {p.name: type(p) for p in space.tunable}
    best, shared = None, 0
    for path in model_paths():
        loaded = _found(*_version(path))
        theirs = {} if loaded is None else {p.name: type(p) for p in loaded.space.tunable}
        common = len(mine.keys() & theirs.keys())
        if common > shared and 2 * common >= max(len(mine), len(theirs)):
            best, shared = (path.name.removesuffix(META_SUFFIX), theirs), common
    if best is None:
        return None
    name, theirs = best
    said = [f"needs {', '.join(n for n in theirs if n not in mine)}"] if theirs.keys() - mine.keys() else []
    said += (
        [f"does not read {', '.join(n for n in mine if n not in theirs)}"]
        if mine.keys() - theirs.keys()
        else []
    )
    kinds = [f"{n} as {_KIND[theirs[n]]}" for n in mine if n in theirs and theirs[n] is not mine[n]]
    said += [f"reads {', '.join(kinds)}"] if kinds else []
    return f"the {name} meta-model {' and '.join(said)}" if said else None


_KIND = {FloatParam: "float", IntParam: "int", CategoricalParam: "categorical"}


def found_at(space: SearchSpace) -> Path | None:
    """The file of the found model that serves ``space`` (as ``"auto"`` resolves it), else ``None``."""
    return _search_at(space, "the space")[1]


def _search(space: SearchSpace, what: str) -> tuple[MetaModel | None, str | None]:
    """The first found model that serves ``space``, else why the first that fits its parameters does not."""
    fitted, _, unserved = _search_at(space, what)
    return fitted, unserved


def _search_at(space: SearchSpace, what: str) -> tuple[MetaModel | None, Path | None, str | None]:
    """:func:`_search`, with the file of the model found."""
    if any(p.when is not None for p in space.params):
        return None, None, None
    unserved = None
    for path in model_paths():
        loaded = _found(*_version(path))
        fitted = None if loaded is None else restrict(loaded, space)
        if fitted is not None:
            said = (str(path), fitted.n_tasks) in _said  # a study resolves it several times
            _said.add((str(path), fitted.n_tasks))
            _log.log(
                logging.DEBUG if said else logging.INFO,
                "meta-learner: using %s (%d past tasks)",
                path,
                fitted.n_tasks,
            )
            return fitted, path, None
        if unserved is None and loaded is not None and _same_parameters(loaded.space, space):
            unserved = _no_candidate_inside(str(path), loaded, space, what)
    return None, None, unserved


def _named(model: str, path: Path, space: SearchSpace) -> MetaModel:
    """The model of a named file, moved into ``space``."""
    named = _load(path)
    found = restrict(named, space)
    if found is not None:
        return found
    conditional = [p.name for p in space.params if p.when is not None]
    if conditional:
        raise MetaModelError(
            f"{model}: a meta-model serves a space without conditional parameters, got conditional "
            f"{conditional}."
        )
    if _same_parameters(named.space, space):
        raise MetaModelError(f"{model}: {_no_candidate_inside('', named, space, 'the space')}.")
    raise MetaModelError(
        f"{model}: the meta-model's parameters do not fit the space: a model fits a space with the "
        "same tunable parameters (by name and kind, in any order) and a candidate inside it, got "
        f"model {_kinds(named.space)} for space {_kinds(space)}."
    )


def _no_candidate_inside(path: str, model: MetaModel, space: SearchSpace, what: str) -> str:
    """The reason a model that fits a space's parameters does not serve it (for messages)."""
    name = f"the meta-model {path}" if path else "the meta-model"
    configs = model.candidates
    return (
        f"{name} fits the parameters of {what} but none of its {len(configs)} candidates lies "
        f"inside it: {_left_out(space, configs)}"
    )


def _left_out(space: SearchSpace, configs: Sequence[dict[str, Any]]) -> str:
    """The parameters whose ranges in ``space`` leave every candidate of ``configs`` out.

    Those that leave out all of them alone if any (a range moved or shifted off the
    candidates); else those that leave out some, which together leave out all.
    """
    inside = {p.name: sum(bool(p.contains(c.get(p.name))) for c in configs) for p in space.tunable}
    alone = [p for p in space.tunable if not inside[p.name]]
    if alone:
        return "; ".join(_range_against(p, configs) for p in alone)
    some = [p for p in space.tunable if inside[p.name] < len(configs)]
    each = "; ".join(f"{_range_against(p, configs)} ({inside[p.name]} inside)" for p in some)
    return f"{each}; no candidate is inside all of these at once"


def _range_against(param: FloatParam | IntParam | CategoricalParam, configs: Sequence[dict[str, Any]]) -> str:
    """``lr in [0.5, 1] where the candidates span [0.005, 0.49]``, values to 6 significant digits."""
    values = [c[param.name] for c in configs if param.name in c]
    if isinstance(param, CategoricalParam):
        taken = list(dict.fromkeys(values))
        return f"{param.name} one of {list(param.choices)} where the candidates take {taken}"
    step = param.step if isinstance(param, FloatParam) or param.step != 1 else None
    stepped = "" if step is None else f" step {_g(step)}"
    return (
        f"{param.name} in [{_g(param.low)}, {_g(param.high)}]{stepped} where the candidates span "
        f"[{_g(min(values))}, {_g(max(values))}]"
    )


def _g(value: Any) -> str:
    """A number as messages show it: a float to 6 significant digits (0.0046568, not 0.004656800000000001)."""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _same_parameters(model_space: SearchSpace, space: SearchSpace) -> bool:
    """Whether both spaces have the same tunable parameters, by name and kind, in any order."""
    kinds = {p.name: type(p) for p in model_space.tunable}
    return len(kinds) == len(space.tunable) and all(kinds.get(p.name) is type(p) for p in space.tunable)


def restrict(model: MetaModel, space: SearchSpace) -> MetaModel | None:
    """``model`` moved into ``space`` (candidates outside it dropped), or ``None`` if it does not fit.

    The parameters are matched by name and kind, whatever their order in either space; the
    candidates' unit points follow the order of ``space``.
    """
    if any(p.when is not None for p in space.params):
        return None
    if not _same_parameters(model.space, space):
        return None
    configs = model.candidates
    keep = np.array([not space.invalid(config) for config in configs], dtype=bool)
    if not keep.any():
        return None
    return MetaModel(
        space=space,
        tasks=model.tasks,
        descriptors=model.descriptors,
        units=unit_points(space, [c for c, k in zip(configs, keep, strict=True) if k]),
        scores=model.scores[:, keep],
        n_trials=model.n_trials,
        info=model.info,
        measured=None if model.measured is None else model.measured[:, keep],
    )


def _kinds(space: SearchSpace) -> dict[str, str]:
    """The space's tunable parameters and their kinds (for messages)."""
    return {p.name: str(p.to_dict()["type"]) for p in space.tunable}


def _load(path: Path) -> MetaModel:
    """A model file, read once per version of the file (a refit to the same path is seen)."""
    return _load_cached(*_version(path))


def _version(path: Path) -> tuple[str, int]:
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        mtime = 0  # load_meta_model reports the unreadable file
    return str(path.resolve()), mtime


@lru_cache(maxsize=16)
def _load_cached(path: str, mtime_ns: int) -> MetaModel:
    return load_meta_model(path)


@lru_cache(maxsize=16)
def _found(path: str, mtime_ns: int) -> MetaModel | None:
    """A model found in the search path, or ``None`` if it cannot be used.

    Cached, failures included: a bad file is read, and said to be skipped, once per
    version of the file, not at every study.
    """
    try:
        return _load_cached(path, mtime_ns)
    except MetaModelError as exc:
        _log.warning("meta-model %s skipped: %s", path, exc)
        return None
