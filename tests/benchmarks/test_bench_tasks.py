from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.tasks import MAX_ROWS, Task, id_columns, list_tasks, load_task, preprocess, read_keel


def _sizes(task: Task) -> tuple[int, int, int]:
    return len(task.y_train), len(task.y_valid), len(task.y_test)


def _check_split(task: Task, n_rows: int) -> None:
    train, valid, test = _sizes(task)
    assert train + valid + test == n_rows
    assert abs(train - 0.6 * n_rows) <= 1
    assert abs(valid - 0.2 * n_rows) <= 1
    assert abs(test - 0.2 * n_rows) <= 1
    labels = np.concatenate([task.y_train, task.y_valid, task.y_test])
    overall = np.bincount(labels) / n_rows
    for y in (task.y_train, task.y_valid, task.y_test):
        counts = np.bincount(y, minlength=len(overall))
        assert np.all(np.abs(counts - overall * len(y)) <= 1.0)  # stratified
    for X in (task.X_train, task.X_valid, task.X_test):
        assert X.dtype == np.float64
        assert not np.isnan(X).any()
    for y in (task.y_train, task.y_valid, task.y_test):
        assert y.dtype == np.int64


def test_list_tasks_has_the_47_public_tasks() -> None:
    names = list_tasks()
    assert len(names) == len(set(names)) == 47
    assert sum(name.startswith("keel_") for name in names) == 43
    assert names[-4:] == ["sklearn_iris", "sklearn_wine", "sklearn_breast_cancer", "sklearn_digits"]


def test_sklearn_iris_is_split_60_20_20_and_stratified() -> None:
    task = load_task("sklearn_iris")
    assert _sizes(task) == (90, 30, 30)
    _check_split(task, 150)
    assert np.array_equal(np.bincount(task.y_valid), [10, 10, 10])
    assert task.n_features == 4 and task.n_classes == 3


def test_keel_breast_one_hot_encodes_its_nominal_features() -> None:
    task = load_task("keel_breast")
    _check_split(task, 277)
    # 9 raw features, 8 of them nominal: many more columns after one-hot encoding.
    assert task.n_features == 39
    X = np.vstack([task.X_train, task.X_valid, task.X_test])
    one_hot = X[:, 1:]  # the one numeric column (deg-malig) comes first
    assert set(np.unique(one_hot)) <= {0.0, 1.0}


def test_unknown_task_is_refused() -> None:
    with pytest.raises(KeyError, match="keel_nope"):
        load_task("keel_nope")


KEEL_WITH_HEADER = """@relation toy
@attribute Size real [0.0, 10.0]
@attribute Color {red, green}
@attribute Count integer [0, 9]
@attribute Class {pos, neg}
@inputs Size, Color, Count
@outputs Class
@data
1.0, red, 3, pos
?, green, 4, neg
3.0, <null>, 5, pos
5.0, red, ?, neg
7.0, green, 1, pos
9.0, red, 2, neg
2.0, green, 6, pos
4.0, red, 7, neg
6.0, green, 8, pos
8.0, red, 9, neg
"""


def test_read_keel_parses_headers_and_missing_values(tmp_path: Path) -> None:
    path = tmp_path / "toy.dat"
    path.write_text(KEEL_WITH_HEADER)
    features, labels = read_keel(path)
    assert list(features.columns) == ["Size", "Color", "Count"]
    assert pd.api.types.is_numeric_dtype(features["Size"]) and pd.api.types.is_numeric_dtype(
        features["Count"]
    )
    assert features["Size"].isna().sum() == 1 and features["Count"].isna().sum() == 1
    assert features["Color"].isna().sum() == 1
    assert labels.tolist()[:2] == ["pos", "neg"]

    task = preprocess("toy", features, labels)
    X = np.vstack([task.X_train, task.X_valid, task.X_test])
    assert X.shape == (10, 4)  # Size, Count, Color_green, Color_red
    assert not np.isnan(X).any()
    assert 5.0 in X[:, 0]  # Size's missing value filled with the median of 1,3,5,7,9,2,4,6,8
    assert np.any(X[:, 2:].sum(axis=1) == 0)  # the missing color: no one-hot column set


def test_read_keel_infers_types_without_header(tmp_path: Path) -> None:
    path = tmp_path / "plain.dat"
    path.write_text("1, a, 0.5, x \n2, b, ?, y\n3, a, 1.5, x\n")
    features, labels = read_keel(path)
    assert [pd.api.types.is_numeric_dtype(features[c]) for c in features] == [True, False, True]
    assert labels.tolist() == ["x", "y", "x"]


def test_id_columns_are_dropped() -> None:
    frame = pd.DataFrame(
        {
            "ID": [7.0, 3.0, 9.0, 1.0],
            "counter": [10.0, 11.0, 12.0, 13.0],
            "name": ["a", "b", "c", "d"],
            "measure": [0.1, 0.7, 0.3, 0.2],
            "color": ["r", "g", "r", "g"],
        }
    )
    assert id_columns(frame) == ["ID", "counter", "name"]


def test_more_than_10000_rows_are_subsampled() -> None:
    n = MAX_ROWS + 50
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    task = preprocess("big", frame, pd.Series(rng.integers(0, 3, size=n)))
    _check_split(task, MAX_ROWS)
