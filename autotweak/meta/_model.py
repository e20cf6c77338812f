"""The fitted meta-model, and its versioned file format.

A meta-model holds, for one search space, a set of candidate configs (every config seen
in the histories plus a space-filling design) and each past task's predicted normalized
score for each candidate: ``scores[t, c]`` in ``[0, 1]``, the fraction of that task's
configs that candidate ``c`` is expected to beat (1 = the task's best). Everything the
sampler needs at proposal time is in these arrays, so proposing is a few vector
operations and the file is small.

Where a past task ran a candidate, its score was measured; elsewhere a surrogate predicted
it. The optional boolean ``measured`` array says which is which, so that a proposal can
tell a user what a past task actually scored from what it is predicted to score.

The file is one ``.npz`` (numpy, no pickle) with a JSON header: ``format_version``,
the autotweak version that wrote it, the space, the task names and descriptors, and what
it was trained on. :func:`load_meta_model` refuses a file of another ``format_version``.
The ``measured`` array is optional within format 1: a file without it (written before it
was kept) loads with ``measured=None``, unknown, and a reader that does not know it skips
it (arrays are read by name).

Example:
    >>> import numpy as np
    >>> from autotweak import SearchSpace
    >>> space = SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0}})
    >>> units, scores = np.array([[0.0], [1.0]]), np.array([[0.2, 0.9]])
    >>> model = MetaModel(space, ("a",), ({},), units, scores, np.array([2]))
    >>> model.candidate(1)
    {'x': 1.0}
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from autotweak.exceptions import AutotweakError
from autotweak.space import FloatParam, SearchSpace

__all__ = ["FORMAT_VERSION", "MetaModel", "MetaModelError", "load_meta_model"]

FORMAT_VERSION = 1
KIND = "autotweak.meta-model"
_SLACK = 1e-6  # unit points may overshoot [0, 1] by rounding
_ROUNDING = 4 * float(np.finfo(np.float64).eps)  # float64 rounding of a unit point (log, exp)


class MetaModelError(AutotweakError, ValueError):
    """A meta-model file cannot be used: unreadable, another format version, or another space."""


@dataclass(frozen=True, eq=False)
class MetaModel:
    """Past tasks' predicted normalized scores over candidate configs of one space.

    Attributes:
        space: The search space the candidates live in.
        tasks: Names of the past tasks (rows of ``scores``).
        descriptors: Each past task's descriptor (meta-features, family, tags).
        units: ``(n_candidates, n_tunable)`` candidates in the unit cube of ``space``.
        scores: ``(n_tasks, n_candidates)`` predicted normalized scores, 1 = best.
        n_trials: ``(n_tasks,)`` trials each task's predictions were fit on.
        info: What the model was trained on (sources, skipped records, settings).
        measured: ``(n_tasks, n_candidates)`` booleans, true where the task ran the
            candidate (its score is its own rank), false where the surrogate predicted it;
            ``None`` when unknown (a file written before it was kept).
    """

    space: SearchSpace
    tasks: tuple[str, ...]
    descriptors: tuple[Mapping[str, float | str], ...]
    units: NDArray[np.float64]
    scores: NDArray[np.float64]
    n_trials: NDArray[np.int64]
    info: Mapping[str, Any] = field(default_factory=dict)
    measured: NDArray[np.bool_] | None = None

    def __repr__(self) -> str:
        """What the model is, in one line (its arrays are thousands of numbers)."""
        space = f"space {self.space.name!r}" if self.space.name else f"space of {', '.join(self.space.names)}"
        sources = ", ".join(self.info.get("sources", ()))
        return (
            f"MetaModel({space}, {len(self.tasks)} past task(s), {int(self.n_trials.sum())} trial(s), "
            f"{len(self.units)} candidates{'; from ' + sources if sources else ''})"
        )

    def __post_init__(self) -> None:
        if self.scores.ndim != 2:
            raise MetaModelError(f"'scores' must be 2-D (tasks x candidates), got shape {self.scores.shape}.")
        n_tasks, n_candidates = self.scores.shape
        if len(self.tasks) != n_tasks or len(self.descriptors) != n_tasks or len(self.n_trials) != n_tasks:
            counts = (
                f"{len(self.tasks)} names, {len(self.descriptors)} descriptors, {len(self.n_trials)} counts"
            )
            raise MetaModelError(
                f"a meta-model needs one name, descriptor and count per task ({n_tasks} rows of scores), "
                f"got {counts}."
            )
        dims = len(self.space.tunable)
        if self.units.ndim != 2 or self.units.shape[1] != dims:
            raise MetaModelError(
                f"'units' must hold one column per tunable parameter of the space ({dims}), "
                f"got shape {self.units.shape}."
            )
        if len(self.units) != n_candidates:
            raise MetaModelError(
                f"'scores' must have one column per candidate ({len(self.units)} rows of 'units'), "
                f"got shape {self.scores.shape}."
            )
        for name, array, slack in (("scores", self.scores, 0.0), ("units", self.units, _SLACK)):
            outside = np.flatnonzero(~((array >= -slack) & (array <= 1.0 + slack)))  # NaN is outside too
            if len(outside):
                row, column = np.unravel_index(int(outside[0]), array.shape)
                raise MetaModelError(
                    f"{name!r} must hold numbers in [0, 1], got {array[row, column]} at [{row}, {column}] "
                    f"({len(outside)} such values)."
                )
        measured = self.measured
        if measured is not None and (measured.dtype != np.bool_ or measured.shape != self.scores.shape):
            raise MetaModelError(
                f"'measured' must be booleans of the shape of 'scores' {self.scores.shape}, "
                f"got shape {measured.shape} of {measured.dtype}."
            )

    @property
    def n_tasks(self) -> int:
        """Number of past tasks."""
        return len(self.tasks)

    def was_measured(self, task: int, candidate: int) -> bool | None:
        """Whether past task ``task`` ran ``candidate`` (``False``: predicted; ``None``: unknown)."""
        return None if self.measured is None else bool(self.measured[task, candidate])

    @property
    def digest(self) -> str:
        """A short digest of the model's content (to tell two models apart).

        It is computed from the arrays as float32 (as the first files stored the unit points;
        :meth:`save` now keeps them as float64), so a model, its saved-then-loaded copy and a
        file of either kind have the same digest. ``measured`` is left out: it changes no
        proposal, so a study begun with a file without it resumes with the same model refit.
        """
        scores, units = (_stored(a).astype(np.float64) for a in (self.scores, self.units))
        content = hashlib.sha256(np.round(scores, 5).astype(np.float32).tobytes())
        content.update(np.round(units, 6).astype(np.float32).tobytes())
        content.update("\n".join(self.tasks).encode())
        return content.hexdigest()[:12]

    def candidate(self, index: int) -> dict[str, Any]:
        """The config of candidate ``index``.

        A float is the shortest decimal at the candidate's unit point, so a config a past
        task ran comes back with its own values (``0.06``, not ``0.05999999285``), also
        from a file that stored the points as float32. A point of the design that no past
        task ran has no values of its own: it is read at float32 precision (``0.10010673``,
        not ``0.10010673285355``), which stays nearest to it.
        """
        units = self.units[index].tolist()
        config = self.space.from_unit(units)
        never_run = self.measured is not None and not self.measured[:, index].any()
        for param, u in zip(self.space.tunable, units, strict=True):
            if isinstance(param, FloatParam) and param.name in config:
                config[param.name] = _shortest(param, u, self._float32 or never_run)
        return config

    @cached_property
    def candidates(self) -> tuple[dict[str, Any], ...]:
        """Every candidate's config (read, not changed), built once per model.

        The model a study finds is moved into its space several times per process (the
        spec's check, the study's sampler, each worker's), 0.2-0.3 s each to build these.
        """
        return tuple(self.candidate(i) for i in range(len(self.units)))

    @cached_property
    def _float32(self) -> bool:
        """Whether the unit points were stored as float32 (files written before float64 ones)."""
        return bool(np.array_equal(self.units, self.units.astype(np.float32)))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model to ``path`` (``.npz`` is appended if missing); returns the path."""
        from autotweak import __version__

        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        header = {
            "kind": KIND,
            "format_version": FORMAT_VERSION,
            "autotweak_version": __version__,
            "space": {"name": self.space.name, "params": self.space.to_dict()},
            "tasks": list(self.tasks),
            "descriptors": [dict(d) for d in self.descriptors],
            "info": dict(self.info),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        optional: dict[str, Any] = {} if self.measured is None else {"measured": self.measured}
        np.savez_compressed(
            tmp,
            header=np.array(json.dumps(header)),
            units=np.asarray(self.units, dtype=np.float64),
            scores=_stored(self.scores),
            n_trials=self.n_trials,
            **optional,
        )
        tmp.replace(path)
        return path


def _stored(array: NDArray[np.float64]) -> NDArray[np.float32]:
    """An array as float32 (the scores as the file stores them, and the digest's form)."""
    return np.asarray(array, dtype=np.float32)


def _shortest(param: FloatParam, u: float, float32: bool) -> float:
    """The shortest decimal in ``param`` at unit point ``u`` (as stored: float32 or float64)."""
    value = param.from_unit(u)
    target = u if param.step is None else param.to_unit(value)
    for digits in range(1, 18):
        short = float(f"{value:.{digits}g}")
        if param.contains(short) and _same_point(
            param.to_unit(short), target, float32 and param.step is None
        ):
            return short
    return value


def _same_point(a: float, b: float, float32: bool) -> bool:
    """Whether two unit coordinates are the same stored point (float32) or equal up to float64 rounding."""
    if float32:
        return bool(np.float32(a) == np.float32(b))
    return abs(a - b) <= _ROUNDING


def load_meta_model(path: str | os.PathLike[str]) -> MetaModel:
    """Read a meta-model file written by :meth:`MetaModel.save`.

    Raises:
        MetaModelError: If the file is unreadable (missing, empty, truncated, corrupted),
            not a meta-model, of another format version, or has a malformed header or
            arrays; the message names the file and what is wrong with it.
    """
    path = Path(path)
    header, arrays = _read(path)
    _check_header(path, header)
    _check_fields(path, header, arrays)
    try:
        space = SearchSpace.from_dict(header["space"]["params"], name=header["space"]["name"])
    except AutotweakError as exc:
        raise _damaged(path, f"header field 'space' must be a valid search space, got: {exc}") from None
    try:
        return MetaModel(
            space=space,
            tasks=tuple(header["tasks"]),
            descriptors=tuple(header["descriptors"]),
            units=arrays["units"].astype(np.float64),
            scores=arrays["scores"].astype(np.float64),
            n_trials=arrays["n_trials"].astype(np.int64),
            info=header["info"],
            measured=arrays.get("measured"),
        )
    except MetaModelError as exc:
        raise _damaged(path, str(exc).rstrip(".")) from None


_ARRAYS = {"units": 2, "scores": 2, "n_trials": 1}  # name: number of dimensions
_OPTIONAL = {"measured": 2}  # arrays a file may lack (written before they were kept)


def _read(path: Path) -> tuple[Any, dict[str, NDArray[Any]]]:
    if not path.exists():
        raise MetaModelError(
            f"{path}: no such file; check the path (relative paths in a spec are read from the "
            "spec's folder), or fit one with `autotweak meta fit`."
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            for name in ("header", *_ARRAYS):
                if name not in data.files:
                    raise KeyError(name)
            header = json.loads(str(data["header"]))
            arrays = {name: data[name] for name in (*_ARRAYS, *_OPTIONAL) if name in data.files}
    # A damaged file fails in zipfile, zlib, numpy or json, each in its own way (BadZipFile,
    # zlib.error, EOFError, struct.error, ...): all of them mean that it cannot be read.
    except Exception as exc:
        raise MetaModelError(
            f"{path}: must be a meta-model file written by autotweak, got {_unreadable(path, exc)}; "
            "refit it with `autotweak meta fit`."
        ) from None
    return header, arrays


def _unreadable(path: Path, exc: Exception) -> str:
    """What went wrong reading ``path``, in words."""
    if isinstance(exc, OSError):
        return f"a file that cannot be opened ({exc.strerror or exc})"
    if path.stat().st_size == 0:
        return "an empty file"
    with path.open("rb") as file:
        start = file.read(64)
    if not start.startswith(b"PK"):  # every .npz is a zip archive
        return f"a file that is not an .npz archive ({_looks_like(start)})"
    if isinstance(exc, KeyError):
        return f"an archive without the {exc} array"
    return f"a file that cannot be read ({type(exc).__name__}: {exc}; truncated or corrupted?)"


def _looks_like(start: bytes) -> str:
    """What a file that is not a zip archive seems to be, from its first bytes."""
    text = start.lstrip()
    if text.startswith(b"{") and b"curve_model" in start:
        return "it looks like a curve model, which LearnedCurvePruner and load_curve_model read"
    if text.startswith((b"{", b"[")):
        return "it looks like JSON"
    if start.startswith(b"\x93NUMPY"):
        return "it is a single .npy array"
    return f"it starts with {start[:16]!r}"


def _check_header(path: Path, header: Any) -> None:
    if not isinstance(header, dict) or header.get("kind") != KIND:
        raise MetaModelError(f"{path}: header 'kind' must be {KIND!r}; this is not an autotweak meta-model.")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        written = header.get("autotweak_version", "an unknown version")
        raise MetaModelError(
            f"{path}: 'format_version' must be {FORMAT_VERSION} (what this autotweak reads), got {version!r} "
            f"(written by autotweak {written}); refit it with `autotweak meta fit`."
        )


def _list_of(kind: type) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, list) and all(isinstance(item, kind) for item in value)


def _is_mapping(value: Any) -> bool:
    return isinstance(value, dict)


def _is_space(value: Any) -> bool:
    return _is_mapping(value) and isinstance(value.get("name"), str) and _is_mapping(value.get("params"))


_HEADER_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "space": ("a mapping with a 'name' and 'params'", _is_space),
    "tasks": ("a list of task names", _list_of(str)),
    "descriptors": ("a list of mappings, one per task", _list_of(dict)),
    "info": ("a mapping", _is_mapping),
}


def _check_fields(path: Path, header: dict[str, Any], arrays: Mapping[str, NDArray[Any]]) -> None:
    """Each header field and array has the type :meth:`MetaModel.save` wrote it with."""
    for name, (rule, holds) in _HEADER_FIELDS.items():
        if name not in header:
            raise _damaged(path, f"header field {name!r} must be {rule}, got no {name!r} field")
        if not holds(header[name]):
            raise _damaged(path, f"header field {name!r} must be {rule}, got {name}={header[name]!r:.80}")
    for name, ndim in _ARRAYS.items():
        array = arrays[name]
        if array.ndim != ndim or not np.issubdtype(array.dtype, np.number):
            raise _damaged(
                path, f"array {name!r} must be {ndim}-D numbers, got shape {array.shape} of {array.dtype}"
            )
    for name, ndim in _OPTIONAL.items():
        flags = arrays.get(name)
        if flags is not None and (flags.ndim != ndim or flags.dtype != np.bool_):
            raise _damaged(
                path, f"array {name!r} must be {ndim}-D booleans, got shape {flags.shape} of {flags.dtype}"
            )


def _damaged(path: Path, what: str) -> MetaModelError:
    return MetaModelError(f"{path}: {what}; the file is damaged, refit it with `autotweak meta fit`.")
