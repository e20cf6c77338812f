"""Finding a curve model: a file the user names, or one shipped in ``meta/``.

Shipped models are ``meta/<space>.curve.json`` (packaged as ``autotweak/_data/meta``);
``$AUTOTWEAK_META_PATH`` folders are searched first. A model fits a trial when the trial's
tunable parameters are the model's, by name, and its values lie in the model's space (a
user space that ``extends: hgb`` and narrows a range still fits the ``hgb`` model).

Example:
    >>> model_for({"learning_rate": 0.1, "max_leaf_nodes": 31, "min_samples_leaf": 20,
    ...            "l2_regularization": 0.1, "max_features": 0.5}).space.name  # doctest: +SKIP
    'hgb'
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from autotweak._locations import model_files
from autotweak.curves._model import CurveModel, CurveModelError

__all__ = ["CURVE_SUFFIX", "curve_model_paths", "load_curve_model", "model_for", "nearest_model"]

_log = logging.getLogger(__name__)

CURVE_SUFFIX = ".curve.json"


def curve_model_paths() -> list[Path]:
    """Curve model files found: ``$AUTOTWEAK_META_PATH`` folders first, then the shipped ones."""
    return model_files(CURVE_SUFFIX)


@lru_cache(maxsize=32)
def _load_cached(path: str, mtime_ns: int) -> CurveModel:
    return CurveModel.load(path)


def load_curve_model(path: str | os.PathLike[str]) -> CurveModel:
    """Read a model file, once per process while the file is unchanged."""
    resolved = Path(path).resolve()
    try:
        mtime = resolved.stat().st_mtime_ns
    except OSError as exc:
        raise CurveModelError(f"{path}: a curve model must be a readable JSON file, got {exc}") from None
    return _load_cached(str(resolved), mtime)


def _shipped(paths: Iterable[Path]) -> list[CurveModel]:
    models = []
    for path in paths:
        resolved = path.resolve()
        try:
            mtime = resolved.stat().st_mtime_ns
        except OSError:
            mtime = 0  # CurveModel.load reports the unreadable file
        model = _found(str(resolved), mtime)
        if model is not None:
            models.append(model)
    return models


@lru_cache(maxsize=32)
def _found(path: str, mtime_ns: int) -> CurveModel | None:
    """A model found in the search path, or ``None`` if it cannot be used.

    Cached, failures included: the pruner asks at every report, and a bad file is read,
    and said to be skipped, once per version of the file.
    """
    try:
        return _load_cached(path, mtime_ns)
    except CurveModelError as exc:
        _log.warning("curve model %s skipped: %s", path, exc)
        return None


def model_for(params: Mapping[str, Any], models: Iterable[CurveModel] | None = None) -> CurveModel | None:
    """The first model (shipped ones by default) whose space the trial's ``params`` fit."""
    for model in _shipped(curve_model_paths()) if models is None else models:
        names = {p.name for p in model.space.tunable}
        if set(params) == names and model.unit_config(params) is not None:
            return model
    return None


def nearest_model(names: Iterable[str], models: Iterable[CurveModel] | None = None) -> CurveModel | None:
    """The model (shipped ones by default) that reads most of ``names``, if it reads at least half of them.

    Used to say why no model fits: a space that ``extends`` a shipped one and drops, adds or
    widens a parameter is nearest to the model of the space it extends.

    Example:
        >>> nearest_model(["learning_rate", "max_leaf_nodes", "min_samples_leaf",
        ...                "l2_regularization"]).space.name  # doctest: +SKIP
        'hgb'
    """
    wanted = set(names)
    best, shared = None, 0
    for model in _shipped(curve_model_paths()) if models is None else models:
        common = len(wanted & {p.name for p in model.space.tunable})
        if common > shared and 2 * common >= max(len(wanted), len(model.space.tunable)):
            best, shared = model, common
    return best
