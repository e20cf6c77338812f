"""fit_meta_model checks its arguments and maps the histories onto the space as the readers do."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from autotweak import AutotweakError
from autotweak.meta import (
    Histories,
    HistoryError,
    MetaModelError,
    PastTrial,
    TaskHistory,
    fit_meta_model,
    read_table,
)
from autotweak.space import SearchSpace

SPACE = SearchSpace.from_dict(
    {
        "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
        "depth": {"type": "int", "low": 1, "high": 8},
        "x": {"type": "float", "low": 0.0, "high": 1.0},
    },
    name="toy",
)


def make_task(name: str, configs: list[dict[str, Any]], values: list[float] | None = None) -> TaskHistory:
    """A task whose trial ``i`` has ``configs[i]`` and value ``values[i]`` (default: ``i``)."""
    scores = values if values is not None else [float(i) for i in range(len(configs))]
    trials = tuple(
        PastTrial(config, value, source=f"{name}#{i}")
        for i, (config, value) in enumerate(zip(configs, scores, strict=True))
    )
    return TaskHistory(name, "maximize", trials)


def good_configs(n: int = 8) -> list[dict[str, Any]]:
    return [{"lr": 10 ** -(1 + i % 3), "depth": 1 + i % 8, "x": i / n} for i in range(n)]


def test_histories_of_another_space_are_refused_naming_the_param(tmp_path: Path) -> None:
    rows = [
        {"task": t, "trial": i, "value": float(i), "param.alpha": i / 10, "param.beta": 2 * i}
        for t in ("a", "b")
        for i in range(6)
    ]
    histories = read_table(pd.DataFrame(rows))  # read for a space inferred from the table
    with pytest.raises(MetaModelError) as info:
        fit_meta_model(histories, SPACE, n_design=8)
    message = str(info.value)
    assert (
        "must hold trials with a finite value and params that fit the space 'toy' (lr, depth, x)" in message
    )
    assert "got none of 12: 12 records skipped: 12 x param 'lr' is missing (e.g. table:frame#a/0)" in message


def test_a_hand_built_trial_out_of_range_or_missing_a_param_is_skipped_and_counted() -> None:
    configs = good_configs()
    configs[0] = configs[0] | {"x": 5.0}  # far out: skipped
    configs[1] = configs[1] | {"x": 1.05}  # within 10%: clipped, as a reader does
    configs[2] = {"lr": 0.01, "depth": 3}  # x missing: skipped
    model = fit_meta_model(Histories((make_task("a", configs),)), SPACE, n_design=8)
    assert model.info["n_trials"] == 6
    skipped = model.info["skipped_records"]
    assert "2 records skipped" in skipped
    assert "1 x param 'x' out of range [0.0, 1.0] (e.g. 5.0 at a#0)" in skipped
    assert "1 x param 'x' is missing (e.g. a#2)" in skipped
    assert "kept with changes: 1 x param 'x' clipped into range" in skipped
    assert float(model.units[:, 2].max()) <= 1.0


def test_a_non_finite_value_is_skipped_and_counted_not_a_raw_sklearn_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    values = [math.nan, math.inf, *[float(i) for i in range(6)]]
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        model = fit_meta_model(Histories((make_task("a", good_configs(), values),)), SPACE, n_design=8)
    assert model.info["n_trials"] == 6
    assert "2 x the trial's value is not a finite number (e.g. nan at a#0)" in model.info["skipped_records"]
    assert "trials that do not fit the space are left out" in caplog.text


def test_histories_read_for_the_space_are_fit_unchanged() -> None:
    task = make_task("a", good_configs())
    model = fit_meta_model(Histories((task,)), SPACE, n_design=0)
    assert model.info["skipped_records"] == "no record skipped"
    assert np.allclose(model.units, np.array([SPACE.to_unit(t.params) for t in task.trials], dtype=float))


def test_a_direction_other_than_maximize_or_minimize_is_refused() -> None:
    with pytest.raises(
        HistoryError, match=r"'direction' of task 'a' must be 'maximize' or 'minimize', got direction='max'"
    ):
        TaskHistory("a", "max", ())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("histories", "space", "settings", "message"),
    [
        ([], SPACE, {}, "'histories' of fit_meta_model must be Histories (from read_table"),
        (None, SPACE, {}, "got NoneType None"),
        (
            "H",
            None,
            {},
            "'space' must be a SearchSpace, a library space name ('hgb') or a space file's path, "
            "got NoneType None",
        ),
        ("H", 3, {}, "'space' must be a SearchSpace"),
        (
            "H",
            SPACE,
            {"n_design": -1},
            "'n_design' of fit_meta_model must be an integer >= 0, got n_design=-1.",
        ),
        (
            "H",
            SPACE,
            {"min_trials": "5"},
            "'min_trials' of fit_meta_model must be an integer >= 1, got min_trials='5'.",
        ),
        (
            "H",
            SPACE,
            {"min_trials": 0},
            "'min_trials' of fit_meta_model must be an integer >= 1, got min_trials=0.",
        ),
        ("H", SPACE, {"seed": True}, "'seed' of fit_meta_model must be an integer >= 0, got seed=True."),
        (
            "H",
            SPACE,
            {"n_design": 2.5},
            "'n_design' of fit_meta_model must be an integer >= 0, got n_design=2.5.",
        ),
    ],
)
def test_wrong_arguments_are_refused_naming_the_argument_rule_and_value(
    histories: Any, space: Any, settings: dict[str, Any], message: str
) -> None:
    given = Histories((make_task("a", good_configs()),)) if histories == "H" else histories
    with pytest.raises(MetaModelError) as info:
        fit_meta_model(given, space, **settings)
    assert message in str(info.value)


def test_a_library_space_name_or_file_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "toy.yaml"
    path.write_text(
        "params:\n  lr: {type: float, low: 1.0e-4, high: 1.0, log: true}\n"
        "  depth: {type: int, low: 1, high: 8}\n  x: {type: float, low: 0.0, high: 1.0}\n"
    )
    histories = Histories((make_task("a", good_configs()),))
    assert fit_meta_model(histories, path, n_design=4).space.names == ["lr", "depth", "x"]
    with pytest.raises(AutotweakError, match="learning_rate"):
        fit_meta_model(histories, "hgb", n_design=4)  # a library space the trials do not fit
