"""Dataset meta-features: what is known of a task before any training.

:func:`describe_dataset` computes a small, cheap descriptor of a classification dataset
from its training split: sizes, feature types, class balance and three landmarkers (the
cross-validated accuracy of a decision stump, of naive Bayes and of 1-nearest-neighbour,
each relative to the majority class), on at most 2,000 rows so that it takes well under
a second. The meta-learner weighs past tasks by how close their descriptors are (see
:func:`~autotweak.meta.descriptor_weights`) until the new task's own results take over.

Example:
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> features = describe_dataset(X, y)
    >>> features["n_classes"], round(features["log_rows"], 2)
    (3.0, 5.01)
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.model_selection import cross_val_score
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.multiclass import type_of_target

from autotweak.exceptions import AutotweakError

__all__ = ["DatasetError", "describe_dataset"]

MAX_ROWS = 2_000
CLASSIFICATION = ("binary", "multiclass")  # sklearn's type_of_target for class labels


class DatasetError(AutotweakError, ValueError):
    """A dataset :func:`describe_dataset` cannot describe; the message names ``X`` or ``y`` and the rule."""


def describe_dataset(X: ArrayLike, y: ArrayLike, *, seed: int = 0) -> dict[str, float]:
    """Meta-features of a classification dataset (use its training split).

    Returns:
        ``log_rows``, ``log_features``, ``n_classes``, ``class_entropy`` (normalized to
        [0, 1]), ``minority_fraction``, ``binary_features`` (fraction of 0/1 columns), and
        the landmarkers ``stump``, ``naive_bayes``, ``nearest_neighbour``: 3-fold accuracy
        minus the majority class's share.

    Raises:
        DatasetError: If ``X`` is not a 2-D array of finite numbers, ``y`` is not one class
            label per row of ``X``, or ``y`` is continuous (a regression target).
    """
    features = _features(X)
    labels = _labels(y, len(features))
    n_rows, n_columns = features.shape
    _, counts = np.unique(labels, return_counts=True)
    shares = counts / counts.sum()
    entropy = float(-(shares * np.log(shares)).sum() / math.log(len(shares))) if len(shares) > 1 else 0.0
    binary = np.all(np.isin(features, (0.0, 1.0)), axis=0).mean() if n_columns else 0.0
    out = {
        "log_rows": math.log(n_rows),
        "log_features": math.log(max(n_columns, 1)),
        "n_classes": float(len(counts)),
        "class_entropy": entropy,
        "minority_fraction": float(shares.min()),
        "binary_features": float(binary),
    }
    return out | _landmarkers(features, labels, float(shares.max()), seed)


def _features(X: ArrayLike) -> NDArray[np.float64]:
    try:
        features = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DatasetError(
            "'X' of describe_dataset must hold numbers (encode text and categorical columns first), "
            f"got {exc}."
        ) from None
    if features.ndim != 2 or len(features) < 2 or features.shape[1] < 1:
        raise DatasetError(
            f"'X' of describe_dataset must be 2-D (rows x features) with >= 2 rows and >= 1 column, "
            f"got shape {features.shape}."
        )
    bad = np.argwhere(~np.isfinite(features))
    if len(bad):
        row, column = bad[0].tolist()
        raise DatasetError(
            f"'X' of describe_dataset must hold finite numbers (impute missing values first), got "
            f"{features[row, column]} at row {row}, column {column} ({len(bad)} such cells)."
        )
    return features


def _labels(y: ArrayLike, n_rows: int) -> NDArray[Any]:
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels.ravel()
    if labels.ndim != 1 or len(labels) != n_rows:
        raise DatasetError(
            f"'y' of describe_dataset must be 1-D, one class label per row of 'X' ({n_rows} rows), "
            f"got shape {labels.shape}."
        )
    if np.issubdtype(labels.dtype, np.floating) and not np.isfinite(labels).all():
        row = int(np.flatnonzero(~np.isfinite(labels))[0])
        raise DatasetError(f"'y' of describe_dataset must hold class labels, got {labels[row]} at row {row}.")
    try:
        kind = type_of_target(labels)
    except ValueError as exc:  # mixed types
        raise DatasetError(f"'y' of describe_dataset must hold class labels, got {exc}") from None
    if kind not in CLASSIFICATION:
        example = labels[0].item() if isinstance(labels[0], np.generic) else labels[0]
        raise DatasetError(
            "'y' of describe_dataset must hold class labels (it describes classification datasets), "
            f"got {kind} values (e.g. {example!r}); a regression task is not described: give it tags."
        )
    return labels


def _landmarkers(X: np.ndarray, y: np.ndarray, majority: float, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    if len(y) > MAX_ROWS:
        rows = rng.choice(len(y), MAX_ROWS, replace=False)
        X, y = X[rows], y[rows]
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    X = (X - X.mean(axis=0)) / scale
    _, counts = np.unique(y, return_counts=True)
    folds = int(min(3, counts.min()))
    models = {
        "stump": DecisionTreeClassifier(max_depth=1, random_state=seed),
        "naive_bayes": GaussianNB(),
        "nearest_neighbour": KNeighborsClassifier(n_neighbors=1),
    }
    out = {}
    for name, model in models.items():
        if folds < 2:
            out[name] = 0.0
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            accuracy = float(cross_val_score(model, X, y, cv=folds).mean())
        out[name] = accuracy - majority
    return out
