import math

import numpy as np
import pytest

from autotweak import SearchSpace
from benchmarks.replay import History
from benchmarks.replay.data import TaskData
from benchmarks.replay.metrics import RunCurves, TaskStats, average_ranks, run_curves, to_target, value_at
from benchmarks.replay.portfolio import greedy_portfolio, regret_matrix
from benchmarks.replay.results import Curves, matching_table
from benchmarks.replay.simulate import ReplayTrial


def _task() -> TaskData:
    final_val = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    final_test = np.array([0.85, 0.9, 0.6, 0.7, 0.4])
    steps = np.array([0.25, 0.5, 0.75, 1.0])
    return TaskData(
        name="t",
        config_ids=np.arange(5),
        params=tuple({"x": i / 4} for i in range(5)),
        steps=np.arange(1, 5),
        val=final_val[:, None] * steps,
        test=final_test[:, None] * steps,
        fit_seconds=np.full(5, 8.0),
    )


def _trial(config_id: int, steps_read: int, val: float) -> ReplayTrial:
    return ReplayTrial(config_id, steps_read, 4, 8.0, val, 0.0, complete=steps_read == 4)


def test_regrets_on_a_hand_computed_example() -> None:
    task = _task()
    stats = TaskStats.of(task)
    assert (stats.best_val, stats.median_val, stats.min_val) == (0.9, 0.7, 0.5)
    assert (stats.best_test, stats.median_test) == (0.9, 0.7)
    assert stats.spread == pytest.approx(0.2) and not stats.saturated
    # config 2 complete; config 0 pruned after 1 of 4 steps (not an incumbent); config 1 complete
    curves = run_curves([_trial(2, 4, 0.7), _trial(0, 1, 0.225), _trial(1, 4, 0.8)], task, stats)
    assert curves.val == pytest.approx([1.0, 1.0, 0.5])  # (0.9 - 0.7) / 0.2, then (0.9 - 0.8) / 0.2
    assert curves.test == pytest.approx([1.5, 1.5, 0.0])  # test of the picked config: 0.6, then 0.9
    assert curves.hpob == pytest.approx([0.5, 0.5, 0.25])  # over best - min = 0.4
    assert curves.compute == pytest.approx([1.0, 1.25, 2.25])
    assert curves.seconds == pytest.approx([8.0, 10.0, 18.0])
    assert to_target(curves) == (None, None, None)
    assert to_target(curves, target=0.5) == (3, pytest.approx(2.25), pytest.approx(18.0))
    assert value_at(curves.val, 2) == 1.0 and value_at(curves.val, 50) == pytest.approx(0.5)


def test_before_any_complete_trial_the_worst_config_stands_in() -> None:
    task = _task()
    curves = run_curves([_trial(0, 2, 0.45)], task, TaskStats.of(task))
    assert curves.val == pytest.approx([2.0])  # (0.9 - 0.5) / 0.2
    assert curves.hpob == pytest.approx([1.0])


def test_a_task_whose_best_is_its_median_is_saturated() -> None:
    task = _task()
    flat = TaskData(**{**vars(task), "val": np.full((5, 4), 0.8)})
    stats = TaskStats.of(flat)
    assert stats.saturated
    assert math.isnan(run_curves([_trial(1, 4, 0.8)], flat, stats).val[0])


def test_average_ranks_share_ties_and_skip_missing_tasks() -> None:
    scores = {"a": {"t1": 0.1, "t2": 0.5, "t3": 0.0}, "b": {"t1": 0.2, "t2": 0.5}}
    assert average_ranks(scores) == {"a": 1.25, "b": 1.75}


def test_greedy_portfolio_on_a_hand_computed_example() -> None:
    space = SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0}})
    configs = {0: {"x": 0.0}, 1: {"x": 0.5}, 2: {"x": 1.0}}
    history = History("dense", configs, {"a": {0: 1.0, 1: 0.5, 2: 0.0}, "b": {0: 0.0, 1: 0.5, 2: 1.0}})
    # regrets a: [0, 1, 2], b: [2, 1, 0]; all tie at mean 1 -> config 0; then config 2 brings both to 0
    assert greedy_portfolio(history, 5, space) == [0, 2]
    assert greedy_portfolio(history, 1, space) == [0]


def test_a_sparse_history_imputes_the_nearest_observed_config() -> None:
    space = SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0}})
    configs = {0: {"x": 0.0}, 1: {"x": 0.1}, 2: {"x": 1.0}}
    # task b never ran config 1: it takes the regret of config 0 (x=0.0), its nearest observed
    history = History("sparse", configs, {"a": {0: 0.9, 1: 1.0, 2: 0.0}, "b": {0: 0.0, 2: 1.0}})
    matrix, candidates = regret_matrix(history, space)
    assert candidates == [0, 1, 2]
    assert matrix.tolist() == [pytest.approx([1.0, 0.0, 10.0]), pytest.approx([2.0, 2.0, 0.0])]
    assert greedy_portfolio(history, 3, space) == [1, 2]


def _curves(val: list[float], compute: list[float]) -> RunCurves:
    zeros = np.zeros(len(val))
    return RunCurves(np.array(val), zeros, zeros, np.array(compute), zeros)


def test_compute_to_match_a_reference_on_a_hand_computed_example() -> None:
    # Hyperband ends at regret 0.2 on both seeds, first reaching it after 6 and 4 trainings.
    curves = Curves({})
    runs = {
        ("s", "t", 0, "hb"): _curves([0.5, 0.2, 0.2], [2, 6, 8]),
        ("s", "t", 1, "hb"): _curves([0.2, 0.2, 0.2], [4, 5, 9]),
        ("s", "t", 0, "fast"): _curves([0.6, 0.1, 0.0], [1, 3, 20]),
        ("s", "t", 1, "fast"): _curves([0.3, 0.3, 0.1], [1, 2, 4]),
        ("s", "t", 0, "never"): _curves([0.9, 0.9, 0.9], [1, 2, 3]),
        ("s", "t", 1, "never"): _curves([0.9, 0.9, 0.9], [1, 2, 3]),
        ("other", "t", 0, "hb"): _curves([0.0], [1]),
    }
    curves.by_run.update(runs)
    table = matching_table(curves, "s", "hb", budget=3)
    assert table.at["hb", "reached"] == 1.0 and table.at["hb", "ratio"] == 1.0
    # fast: 3 of hb's 6 and 4 of hb's 4 trainings
    assert table.at["fast", "compute"] == 3.5 and table.at["fast", "ratio"] == 0.75
    assert table.at["never", "reached"] == 0.0 and np.isinf(table.at["never", "compute"])
    # the budget cuts the curves: after 2 trials "fast" on seed 1 has not reached 0.2
    short = matching_table(curves, "s", "hb", budget=2)
    assert short.at["fast", "reached"] == 0.5
