from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from sklearn.datasets import load_diabetes
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import train_test_split

from benchmarks.design import design_configs
from benchmarks.regression import OUT, build
from benchmarks.replay.data import read_family


def test_a_built_file_is_a_family_of_negative_rmse_curves_in_the_hgb_space(tmp_path: Path) -> None:
    out = build(tmp_path / "reg.parquet", ["reg_diabetes"], n_configs=2, quiet=True)
    family = read_family(out)
    task = family.tasks["reg_diabetes"]
    assert family.space.name == "hgb" and task.n_configs == 2 and task.n_steps == 20
    config = design_configs("hgb", 2)[1]
    X, y = load_diabetes(return_X_y=True)
    X_train, X_rest, y_train, y_rest = train_test_split(X, y, test_size=0.4, random_state=0)
    X_valid, _, y_valid, _ = train_test_split(X_rest, y_rest, test_size=0.5, random_state=0)
    model = HistGradientBoostingRegressor(max_iter=100, early_stopping=False, random_state=0, **config)
    model.fit(X_train, y_train)
    rmse = float(np.sqrt(np.mean((model.predict(X_valid) - y_valid) ** 2)))
    assert task.val[1, -1] == -rmse
    assert (task.val < 0).all() and (task.test < 0).all()


def test_the_committed_file_holds_every_config_of_five_tasks() -> None:
    table = pq.read_table(OUT, columns=["task", "config_id", "step"]).to_pandas()
    assert sorted(table["task"].unique()) == [
        "reg_diabetes",
        "reg_friedman1",
        "reg_friedman2",
        "reg_friedman3",
        "reg_linear",
    ]
    assert len(table) == 5 * 256 * 20
