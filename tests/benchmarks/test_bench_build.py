from pathlib import Path

import pandas as pd
import pytest

from benchmarks.build import main
from benchmarks.design import design_configs

COLUMNS = [
    "task",
    "config_id",
    "step",
    "val_score",
    "test_score",
    "fit_seconds",
    "learning_rate",
    "max_leaf_nodes",
    "min_samples_leaf",
    "l2_regularization",
    "max_features",
]
ARGS = ["--family", "hgb", "--tasks", "sklearn_iris", "--n-configs", "3", "--jobs", "1"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    assert main([*ARGS, "--out", str(out)]) == 0
    return out


def test_build_writes_the_long_format(built: Path) -> None:
    frame = pd.read_parquet(built / "hgb.parquet")
    assert list(frame.columns) == COLUMNS
    assert set(frame["task"]) == {"sklearn_iris"}
    assert len(frame) == 3 * 20
    for config_id, rows in frame.groupby("config_id"):
        assert rows["step"].tolist() == list(range(5, 101, 5))
        assert rows["fit_seconds"].nunique() == 1
        config = design_configs("hgb", 3)[int(config_id)]
        assert rows.iloc[0][list(config)].to_dict() == pytest.approx(config)
    assert frame["val_score"].between(0, 1).all() and frame["test_score"].between(0, 1).all()
    assert (built / ".cache" / "hgb" / "sklearn_iris.parquet").is_file()


def test_a_finished_task_is_skipped(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = pd.read_parquet(built / "hgb.parquet")
    assert main([*ARGS, "--out", str(built)]) == 0
    assert "1 task(s) already in" in capsys.readouterr().out
    # fit_seconds would differ had anything been trained again.
    pd.testing.assert_frame_equal(pd.read_parquet(built / "hgb.parquet"), before)


def test_a_shard_not_yet_merged_is_merged_without_training(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "resumed"
    (out / ".cache").mkdir(parents=True)
    (built / ".cache" / "hgb").rename(out / ".cache" / "hgb")  # as if killed before the merge
    assert main([*ARGS, "--out", str(out)]) == 0
    assert "merged without training" in capsys.readouterr().out
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "hgb.parquet"), pd.read_parquet(built / "hgb.parquet")
    )


def test_a_file_built_with_other_configs_is_refused(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [*ARGS[:-4], "--n-configs", "2", "--jobs", "1", "--out", str(built)]
    assert main(args) == 2
    assert "must hold configs 0..1" in capsys.readouterr().out


def test_unknown_task_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--family", "hgb", "--tasks", "keel_nope", "--out", str(tmp_path)])
