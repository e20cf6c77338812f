from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autotweak import AutotweakError, load_space
from autotweak.space import CategoricalParam, FixedParam, FloatParam, IntParam
from benchmarks.replay.data import BenchmarkDataError, read_family
from tests.benchmarks.conftest import ToyFrame, write


def test_a_valid_file_gives_per_task_arrays(tmp_path: Path, make_toy_frame: ToyFrame) -> None:
    frame = make_toy_frame(tasks=("b", "a"), n_configs=6, n_steps=3)
    family = read_family(write(frame, tmp_path / "toy.parquet"))
    assert family.name == "toy" and list(family.tasks) == ["a", "b"]
    task = family.tasks["a"]
    assert task.val.shape == task.test.shape == (6, 3)
    assert task.steps.tolist() == [1, 2, 3]
    assert task.config_ids.tolist() == list(range(6))
    rows = frame[(frame.task == "a") & (frame.config_id == 4)]
    assert task.val[4].tolist() == rows.val_score.tolist()
    assert task.final_test[4] == rows.test_score.iloc[-1]
    assert task.fit_seconds[4] == pytest.approx(0.9)
    assert task.params[4] == family.configs[4] == {"lr": pytest.approx(1e-4 * 10**3.2), "n": 5, "kind": "a"}


def test_an_inferred_space_follows_the_columns(tmp_path: Path, make_toy_frame: ToyFrame) -> None:
    frame = make_toy_frame(n_configs=6).assign(fixed=3, small=lambda f: f.config_id * 0.1 + 1.0)
    space = read_family(write(frame, tmp_path / "toy.parquet")).space
    lr, n, kind, fixed, small = (space[name] for name in ("lr", "n", "kind", "fixed", "small"))
    assert isinstance(lr, FloatParam) and lr.log and lr.low == pytest.approx(1e-4)
    assert isinstance(n, IntParam) and not n.log and (n.low, n.high) == (1, 5)
    assert isinstance(kind, CategoricalParam) and kind.choices == ("a", "b")
    assert isinstance(fixed, FixedParam) and fixed.value == 3
    assert isinstance(small, FloatParam) and not small.log
    assert read_family(tmp_path / "toy.parquet").library_family is None


def test_hgb_data_gets_the_library_space(make_hgb_file: Callable[..., Path]) -> None:
    family = read_family(make_hgb_file(["t1"], n_configs=4))
    assert family.library_family == "hgb" and family.space == load_space("hgb")
    external = read_family(make_hgb_file(["t1"], n_configs=4, name="mine"))
    assert external.name == "mine" and external.library_family == "hgb"


def _drop(*columns: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda f: f.drop(columns=list(columns))


def _set(row: int, column: str, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame.loc[row, column] = value
        return frame

    return change


def _swap_rows(first: int, second: int) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        order = list(range(len(frame)))
        order[first], order[second] = second, first
        return frame.iloc[order].reset_index(drop=True)

    return change


MALFORMED = {
    "missing column": (_drop("val_score"), "column 'val_score' must be present"),
    "no hyperparameter": (_drop("lr", "n", "kind"), "at least one hyperparameter column"),
    "string score": (
        lambda f: f.assign(test_score=f.test_score.astype(str)),
        "column 'test_score' must be of float type",
    ),
    "float config_id": (
        lambda f: f.assign(config_id=f.config_id.astype(float)),
        "column 'config_id' must be of integer type",
    ),
    "NaN score": (
        _set(5, "val_score", np.nan),
        "column 'val_score' must hold finite numbers (no NaN), got nan at row 5",
    ),
    "negative time": (_set(2, "fit_seconds", -1.0), "column 'fit_seconds' must hold finite numbers >= 0"),
    "missing hyperparameter": (
        _set(3, "kind", None),
        "column 'kind' must have no missing values, got one at row 3",
    ),
    "duplicate key": (
        _set(1, "step", 1),
        "rows must be unique by (task, config_id, step), got a second step=1 at row 1 "
        "(task 'a', config_id 0)",
    ),
    "non-increasing steps": (
        _swap_rows(1, 2),
        "the steps of a curve must increase from row to row, got step=2 after step=3 at row 2",
    ),
    "configs differ between tasks": (
        _set(48 + 4, "n", 4),
        "the hyperparameters of a config_id must be the same on every task and step, got n=2 at row 4 "
        "(task 'a', config_id 1) but n=4 at row 52 (task 'b', config_id 1)",
    ),
    "fewer steps": (
        lambda f: f.drop(index=7).reset_index(drop=True),
        "every config of a family must have the same number of steps, got 4 for task 'a' config_id 0 "
        "but 3 for task 'a' config_id 1",
    ),
    "other steps": (
        _set(7, "step", 9),
        "every config of a family must have the same steps, got [1, 2, 3, 4] for task 'a' config_id 0 "
        "but [1, 2, 3, 9] for task 'a' config_id 1",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_file_is_rejected_naming_file_place_and_rule(
    case: str, tmp_path: Path, make_toy_frame: ToyFrame
) -> None:
    change, message = MALFORMED[case]
    path = write(change(make_toy_frame()), tmp_path / "bad.parquet")
    with pytest.raises(BenchmarkDataError) as caught:
        read_family(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_data_errors_are_autotweak_and_value_errors(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_text("not parquet")
    with pytest.raises(BenchmarkDataError, match="must be a readable Parquet file") as caught:
        read_family(path)
    assert isinstance(caught.value, AutotweakError) and isinstance(caught.value, ValueError)


def test_an_hgb_file_must_hold_hgb_configs(tmp_path: Path, make_toy_frame: ToyFrame) -> None:
    path = write(make_toy_frame(), tmp_path / "hgb.parquet")
    with pytest.raises(BenchmarkDataError, match=r"a hgb file must hold hgb's search space: hyperparameter"):
        read_family(path)
