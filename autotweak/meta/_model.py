"""The fitted meta-model, and its versioned file format.

A meta-model holds, for one search space, a set of candidate configs (every config seen
in the histories plus a space-filling design) and each past task's predicted normalized
score for each candidate: ``scores[t, c]`` in ``[0, 1]``, the fraction of that task's
configs that candidate ``c`` is expected to beat (1 = the task's best). Everything the
sampler needs at proposal time is in these arrays, so proposing is a few vector
operations and the file is small.

The file is one ``.npz`` (numpy, no pickle) with a JSON header: ``format_version``,
the autotweak version that wrote it, the space, the task names and descriptors, and what
it was trained on. :func:`load_meta_model` refuses a file of another ``format_version``.

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from autotweak.exceptions import AutotweakError
from autotweak.space import SearchSpace

__all__ = ["FORMAT_VERSION", "MetaModel", "MetaModelError", "load_meta_model"]

FORMAT_VERSION = 1
KIND = "autotweak.meta-model"


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
    """

    space: SearchSpace
    tasks: tuple[str, ...]
    descriptors: tuple[Mapping[str, float | str], ...]
    units: NDArray[np.float64]
    scores: NDArray[np.float64]
    n_trials: NDArray[np.int64]
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n_tasks, n_candidates = self.scores.shape
        if len(self.tasks) != n_tasks or len(self.descriptors) != n_tasks or len(self.n_trials) != n_tasks:
            raise MetaModelError(f"a meta-model needs one name, descriptor and count per task ({n_tasks}).")
        if self.units.shape != (n_candidates, len(self.space.tunable)):
            raise MetaModelError(
                f"candidates must be ({n_candidates}, {len(self.space.tunable)}) unit points, "
                f"got {self.units.shape}."
            )

    @property
    def n_tasks(self) -> int:
        """Number of past tasks."""
        return len(self.tasks)

    @property
    def digest(self) -> str:
        """A short digest of the model's content (to tell two models apart)."""
        content = hashlib.sha256(np.round(self.scores, 5).astype(np.float32).tobytes())
        content.update(np.round(self.units, 6).astype(np.float32).tobytes())
        content.update("\n".join(self.tasks).encode())
        return content.hexdigest()[:12]

    def candidate(self, index: int) -> dict[str, Any]:
        """The config of candidate ``index``."""
        return self.space.from_unit(self.units[index].tolist())

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
        np.savez_compressed(
            tmp,
            header=np.array(json.dumps(header)),
            units=self.units.astype(np.float32),
            scores=self.scores.astype(np.float32),
            n_trials=self.n_trials,
        )
        tmp.replace(path)
        return path


def load_meta_model(path: str | os.PathLike[str]) -> MetaModel:
    """Read a meta-model file written by :meth:`MetaModel.save`.

    Raises:
        MetaModelError: If the file is unreadable, not a meta-model, or of another format
            version (the message names the file, the version found and the one supported).
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            arrays = {name: data[name] for name in ("units", "scores", "n_trials")}
    except (OSError, ValueError, KeyError) as exc:
        raise MetaModelError(f"{path}: must be a meta-model file written by autotweak, got {exc}") from None
    _check_header(path, header)
    space = SearchSpace.from_dict(header["space"]["params"], name=header["space"]["name"])
    return MetaModel(
        space=space,
        tasks=tuple(header["tasks"]),
        descriptors=tuple(header["descriptors"]),
        units=arrays["units"].astype(np.float64),
        scores=arrays["scores"].astype(np.float64),
        n_trials=arrays["n_trials"].astype(np.int64),
        info=header.get("info", {}),
    )


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
