"""What clairvoyant pruners would spend to reach Hyperband's final regret, worked out by hand."""

from __future__ import annotations

import math

import pytest

from benchmarks.pruning_floor import floor_costs, run_floor
from benchmarks.replay.data import read_family
from benchmarks.replay.simulate import ReplayTrial
from tests.benchmarks.conftest import ToyFrame, write


def test_floor_costs_worked_out_by_hand() -> None:
    # Regrets if trained in full, in the order proposed; 10 reports per training.
    finals = [0.8, 0.5, 0.9, 0.3, 0.1]
    clairvoyant, keeps = floor_costs(finals, target=0.3, n_steps=10)
    assert clairvoyant == pytest.approx(0.3 + 1.0), "three trials stopped at once, the fourth trained"
    assert keeps == pytest.approx(1.0 + 1.0 + 0.1 + 1.0), "0.8 and 0.5 were each the best so far"
    assert floor_costs(finals, target=0.8, n_steps=10) == (1.0, 1.0)
    assert floor_costs(finals, target=0.05, n_steps=10) == (math.inf, math.inf)


def _trial(config_id: int, steps_read: int, val: float) -> ReplayTrial:
    return ReplayTrial(config_id, steps_read, 4, 1.0, val, val, complete=steps_read == 4)


def test_run_floor_reads_the_target_and_hyperbands_compute_from_the_run(make_toy_frame: ToyFrame, tmp_path):
    frame = make_toy_frame(tasks=("a",), n_configs=5, n_steps=4)
    finals = [0.9, 0.8, 0.5, 0.5, 0.5]  # regrets 0, .25, 1, 1, 1 (median .5)
    for cid, score in enumerate(finals):
        frame.loc[frame.config_id == cid, "val_score"] = score
    task = read_family(write(frame, tmp_path / "toy.parquet")).tasks["a"]
    # Hyperband: config 2 stopped after a report, config 1 trained (regret .25), config 0 (the
    # best) stopped after a report, config 3 trained. Its final regret .25 came at trial 2.
    trials = [_trial(2, 1, 0.5), _trial(1, 4, 0.8), _trial(0, 1, 0.9), _trial(3, 4, 0.5)]
    floor = run_floor(trials, task, budget=4)
    assert floor is not None
    assert (floor.trials, floor.hyperband) == (2, pytest.approx(1.25))
    assert floor.clairvoyant == pytest.approx(1.25), "config 2 stopped after one report, config 1 trained"
    assert floor.keeps_new_best == pytest.approx(2.0), "config 2 would have been the best so far"
    assert run_floor([], task, budget=4) is None
