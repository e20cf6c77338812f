"""Histories from long-format tables: the BENCHMARK.md format and the generic one."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autotweak import load_space
from autotweak.meta import HistoryError, read_table
from autotweak.space import SearchSpace

HGB = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "hgb.parquet"


@pytest.fixture(scope="module")
def hgb_frame() -> pd.DataFrame:
    return pd.read_parquet(HGB)


@pytest.fixture
def hgb_slice(hgb_frame: pd.DataFrame, tmp_path: Path) -> Path:
    """Three tasks x 5 configs x 20 steps of the real benchmark data, as hgb.parquet."""
    tasks = sorted(hgb_frame["task"].unique())[:3]
    part = hgb_frame[hgb_frame["task"].isin(tasks) & (hgb_frame["config_id"] < 5)]
    path = tmp_path / "hgb.parquet"
    part.sample(frac=1.0, random_state=0).to_parquet(path)  # any row order
    return path


def test_benchmark_slice_gives_one_trial_per_task_and_config(
    hgb_frame: pd.DataFrame, hgb_slice: Path
) -> None:
    histories = read_table(hgb_slice)
    assert len(histories.tasks) == 3 and histories.n_trials == 15
    task = histories.tasks[0]
    assert task.descriptor == {"family": "hgb"} and task.direction == "maximize"
    assert task.source == f"table:{hgb_slice}"
    trial = task.trials[2]
    rows = hgb_frame[(hgb_frame.task == task.name) & (hgb_frame.config_id == 2)].sort_values("step")
    assert trial.source == f"table:hgb.parquet#{task.name}/2"
    assert trial.steps == tuple(rows.step) and len(trial.steps) == 20
    assert trial.curve == tuple(rows.val_score) and trial.value == rows.val_score.iloc[-1]
    assert trial.params == {c: rows[c].iloc[0] for c in load_space("hgb").names}
    assert isinstance(trial.params["max_leaf_nodes"], int) and trial.complete
    assert histories.skipped.total == 0


def test_the_whole_hgb_file_reads_in_seconds() -> None:
    start = time.perf_counter()
    histories = read_table(HGB)
    elapsed = time.perf_counter() - start
    assert len(histories.tasks) == 47 and histories.n_trials == 47 * 256
    assert {len(t.trials) for t in histories.tasks} == {256}
    assert {len(trial.curve) for t in histories.tasks for trial in t.trials} == {20}
    assert elapsed < 10, f"reading hgb.parquet took {elapsed:.1f} s"


def test_benchmark_test_score_metric_and_a_nan_last_step(hgb_slice: Path, tmp_path: Path) -> None:
    frame = pd.read_parquet(hgb_slice)
    last = frame.step == 100
    frame.loc[last & (frame.config_id == 1), "val_score"] = np.nan
    frame.loc[(frame.step == 5) & (frame.config_id == 2), "val_score"] = np.nan
    path = tmp_path / "hgb.csv"
    frame.to_csv(path, index=False)
    histories = read_table(path)
    assert histories.n_trials == 12
    assert dict(histories.skipped.counts) == {"val_score is not a finite number at the last step": 3}
    assert [len(t.curve) for t in histories.tasks[0].trials] == [20, 19, 20, 20]
    test = read_table(path, metric="test_score")
    assert test.n_trials == 15


def test_benchmark_rows_of_a_config_that_disagree_or_stop_early_are_told(hgb_slice: Path) -> None:
    frame = pd.read_parquet(hgb_slice)
    first = frame.task == sorted(frame.task.unique())[0]
    frame.loc[first & (frame.config_id == 0) & (frame.step == 100), "learning_rate"] = 0.123
    frame = frame[~(first & (frame.config_id == 1) & (frame.step > 50))]  # its curve stops at step 50
    histories = read_table(frame, space="hgb")
    assert dict(histories.skipped.counts) == {"param 'learning_rate' differs between the trial's rows": 1}
    assert dict(histories.skipped.notes) == {
        "curve ends before its task's last step (kept as not complete)": 1
    }
    cut = next(t for t in histories.tasks[0].trials if t.source.endswith("/1"))
    assert not cut.complete and cut.steps[-1] == 50
    assert sum(t.complete for task in histories.tasks for t in task.trials) == histories.n_trials - 1


def test_rows_written_twice_are_dropped_and_noted(hgb_slice: Path) -> None:
    frame = pd.read_parquet(hgb_slice)
    histories = read_table(pd.concat([frame, frame.iloc[:7]]), space="hgb")
    assert histories.n_trials == 15 and histories.skipped.total == 0
    assert dict(histories.skipped.notes) == {"row repeating another row exactly (dropped)": 7}


def test_another_family_file_gets_an_inferred_space(hgb_slice: Path, tmp_path: Path) -> None:
    frame = pd.read_parquet(hgb_slice).drop(columns=["max_features"]).assign(kind="a", depth=3)
    path = tmp_path / "mine.parquet"
    frame.to_parquet(path)
    histories = read_table(path)
    assert histories.tasks[0].descriptor == {"family": "mine"}
    assert set(histories.tasks[0].trials[0].params) == {
        "learning_rate",
        "max_leaf_nodes",
        "min_samples_leaf",
        "l2_regularization",
        "kind",
        "depth",
    }


def test_benchmark_rows_mapped_onto_a_given_space_with_renames(hgb_slice: Path) -> None:
    frame = pd.read_parquet(hgb_slice).rename(columns={"learning_rate": "lr"})
    frame.loc[frame.config_id == 0, "max_features"] = 1.05  # within 10%: clipped
    frame.loc[frame.config_id == 1, "max_features"] = 3.0  # beyond: skipped
    histories = read_table(frame, space=load_space("hgb"), renames={"lr": "learning_rate"})
    assert histories.n_trials == 12
    assert dict(histories.skipped.counts) == {"param 'max_features' out of range [0.2, 1.0]": 3}
    assert histories.skipped.values == {"param 'max_features' out of range [0.2, 1.0]": "3.0"}
    assert dict(histories.skipped.notes) == {"param 'max_features' clipped into range": 3}
    assert histories.tasks[0].trials[0].params["max_features"] == 1.0
    assert histories.tasks[0].trials[0].source.startswith("table:frame#")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["step"]), "column 'step' must be present"),
        (lambda f: f.drop(columns=["config_id"]), "must have a 'config_id' column"),
        (
            lambda f: f.assign(val_score="high"),
            "column 'val_score' must be of float type, got 'high' at row 0",
        ),
        (
            lambda f: f.assign(step=f.step * 0.5).sort_values("step"),
            "column 'step' must hold whole numbers, got 2.5 at row",
        ),
        (lambda f: f.assign(task=None), "column 'task' must have no missing values, got one at row 0"),
        (lambda f: f.assign(step=5), "rows must be unique by (task, config_id, step), got row "),
        (lambda f: f.assign(max_leaf_nodes=1000), "a hgb file must hold hgb's search space"),
        (lambda f: f.iloc[:0], "the table must hold at least one row, got none"),
    ],
)
def test_a_bad_benchmark_file_names_the_file_column_and_rule(
    hgb_slice: Path, tmp_path: Path, change, message: str
) -> None:
    path = tmp_path / "bad" / "hgb.parquet"
    path.parent.mkdir()
    change(pd.read_parquet(hgb_slice)).to_parquet(path)
    with pytest.raises(HistoryError) as caught:
        read_table(path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)


def test_unreadable_or_unknown_files_are_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_text("not parquet")
    with pytest.raises(HistoryError, match=r"broken.parquet: must be a readable table file"):
        read_table(broken)
    with pytest.raises(HistoryError, match=r"must be a .parquet or .csv file, got 'runs.json'"):
        read_table(tmp_path / "runs.json")


# -- generic format -------------------------------------------------------------------------
SPACE = SearchSpace.from_dict(
    {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        "layers": {"type": "int", "low": 1, "high": 4},
        "opt": {"type": "categorical", "choices": ["adam", "sgd"]},
    }
)


def _generic() -> pd.DataFrame:
    rows = []
    for task, direction in (("cifar", "maximize"), ("imdb", "minimize")):
        for trial in range(3):
            for step in (1, 2, 3):
                rows.append(
                    {
                        "task": task,
                        "trial": trial,
                        "step": step,
                        "value": 0.1 * step + trial,
                        "direction": direction,
                        "complete": trial != 2,
                        "param.lr": 0.01 * (trial + 1) if step == 1 else None,
                        "params.layers": trial + 1,
                        "param.opt": "adam",
                        "tag.n_rows": 5000 if task == "cifar" else 25000,
                        "tag.domain": "vision" if task == "cifar" else "text",
                    }
                )
    return pd.DataFrame(rows)


def test_generic_format_gives_curves_directions_flags_and_descriptors(tmp_path: Path, caplog) -> None:
    path = tmp_path / "runs.csv"
    _generic().sample(frac=1.0, random_state=1).to_csv(path, index=False)
    with caplog.at_level(logging.INFO, logger="autotweak"):
        histories = read_table(path, space=SPACE)
    cifar, imdb = histories.tasks
    assert (cifar.name, cifar.direction, imdb.direction) == ("cifar", "maximize", "minimize")
    assert cifar.descriptor == {"n_rows": 5000.0, "domain": "vision"}
    first = cifar.trials[0]
    assert first.params == {"lr": 0.01, "layers": 1, "opt": "adam"}
    assert first.steps == (1, 2, 3) and first.curve == pytest.approx((0.1, 0.2, 0.3))
    assert first.value == pytest.approx(0.3) and first.source == "table:runs.csv#cifar/0"
    assert [t.complete for t in imdb.trials] == [True, True, False]
    assert imdb.scores().tolist() == pytest.approx([-0.3, -1.3])
    assert f"histories from {path}: 2 task(s), 6 trial(s); no record skipped" in caplog.text


def test_generic_format_without_steps_and_with_bad_records() -> None:
    frame = pd.DataFrame(
        {
            "task": ["a"] * 5,
            "trial": ["t1", "t2", "t3", "t4", "t5"],
            "loss": [0.5, 0.4, float("nan"), 0.3, 0.2],
            "param.lr": [0.01, 0.02, 0.03, 5.0, 0.01],
            "param.layers": [1, 2, 3, 2, 9],
            "param.opt": ["adam", "sgd", "adam", "adam", "adam"],
        }
    )
    histories = read_table(frame, space=SPACE, metric="loss", direction="minimize")
    assert [t.source for t in histories.tasks[0].trials] == ["table:frame#a/t1", "table:frame#a/t2"]
    assert histories.tasks[0].trials[0].steps == ()
    assert dict(histories.skipped.counts) == {
        "loss is not a finite number at the last step": 1,
        "param 'lr' out of range [0.0001, 0.1]": 1,
        "param 'layers' out of range [1, 4]": 1,
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["value"]), "column 'value' must be present (the generic format"),
        (
            lambda f: f.assign(direction="up"),
            "column 'direction' must hold 'maximize' or 'minimize', got 'up'",
        ),
        (lambda f: f.assign(complete="maybe"), "column 'complete' must hold true or false, got 'maybe'"),
        (lambda f: f.drop(columns=["param.lr", "params.layers", "param.opt"]), "at least one 'param.<name>'"),
        (lambda f: f.assign(value="x"), "column 'value' must be of float type"),
    ],
)
def test_a_bad_generic_file_names_the_file_column_and_rule(tmp_path: Path, change, message: str) -> None:
    path = tmp_path / "runs.parquet"
    change(_generic()).to_parquet(path)
    with pytest.raises(HistoryError) as caught:
        read_table(path, space=SPACE)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)


def test_a_misspelled_value_column_is_answered_with_the_near_one(tmp_path: Path) -> None:
    path = tmp_path / "runs.parquet"
    _generic().to_parquet(path)
    with pytest.raises(
        HistoryError, match=r"column 'vale' must be present \(.*\) \(did you mean 'value'\?\), got"
    ):
        read_table(path, space=SPACE, metric="vale")


def test_mixed_directions_in_a_task_are_refused() -> None:
    frame = _generic()
    frame.loc[0, "direction"] = "minimize"
    with pytest.raises(
        HistoryError, match=r"the data frame: column 'direction' must be the same on every row"
    ):
        read_table(frame, space=SPACE)


def test_csv_whole_floats_are_ints_and_an_inferred_space_keeps_them(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    path.write_text(
        "task,trial,step,value,param.lr,param.layers,param.opt\n"
        "a,0,1.0,0.41,0.01,2,adam\n"
        "a,0,2.0,0.55,,,\n"
        "a,1,1.0,0.38,0.1,3,sgd\n"
    )
    histories = read_table(path)
    first, second = histories.task("a").trials
    assert first.params == {"lr": 0.01, "layers": 2, "opt": "adam"} and type(first.params["layers"]) is int
    assert first.steps == (1, 2) and second.params == {"lr": 0.1, "layers": 3, "opt": "sgd"}


def test_a_trial_whose_params_differ_between_its_rows_is_skipped_and_counted() -> None:
    frame = pd.DataFrame(
        {
            "task": ["a"] * 5,
            "trial": ["t0", "t0", "t1", "t1", "t2"],
            "step": [1, 2, 1, 2, 1],
            "value": [0.5, 0.6, 0.4, 0.45, 0.7],
            "param.lr": [0.01, 0.02, 0.03, None, 0.05],
            "param.layers": [2, 2, 3, 3, 1],
            "param.opt": ["adam", "adam", "sgd", "sgd", "adam"],
        }
    )
    histories = read_table(frame, space=SPACE)
    assert [t.source for t in histories.tasks[0].trials] == ["table:frame#a/t1", "table:frame#a/t2"]
    assert histories.tasks[0].trials[0].params["lr"] == 0.03  # a value on one row only is no conflict
    assert dict(histories.skipped.counts) == {"param 'lr' differs between the trial's rows": 1}
    assert histories.skipped.examples["param 'lr' differs between the trial's rows"] == "table:frame#a/t0"


def test_a_task_none_of_whose_trials_fit_is_not_read_as_an_empty_task() -> None:
    """As the MLflow and Optuna readers do: "2 tasks, 0 trials" read as if there were tasks to learn from."""
    frame = pd.DataFrame(
        {
            "task": ["a", "a", "b"],
            "trial": [0, 1, 0],
            "value": [0.5, 0.6, 0.7],
            "param.lr": [5.0, 7.0, 0.01],
            "param.layers": [2, 2, 3],
            "param.opt": ["adam", "adam", "sgd"],
        }
    )
    histories = read_table(frame, space=SPACE)
    assert histories.names == ["b"] and histories.n_trials == 1
    assert dict(histories.skipped.counts) == {"param 'lr' out of range [0.0001, 0.1]": 2}
