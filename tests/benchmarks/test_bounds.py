"""The leaked-choice bounds, on a family whose answers are worked out by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from benchmarks.bounds import bounds, expected_best_of_first, noise_floor, noise_markdown, to_markdown
from benchmarks.replay.data import read_family
from tests.benchmarks.conftest import ToyFrame, write

# Final validation scores, per task, of configs 0-4. Regrets (best - x) / (best - median):
#   a: 0, .25, 1, 1, 1      b: 1, 0, .25, 1, 1      c: 1, 1, 1, 1, 0
# d is saturated (best - median = 0.005): not counted, but its winner (config 3) is a past winner.
FINALS = {
    "a": [0.9, 0.8, 0.5, 0.5, 0.5],
    "b": [0.5, 0.9, 0.8, 0.5, 0.5],
    "c": [0.5, 0.5, 0.5, 0.5, 0.7],
    "d": [0.5, 0.5, 0.5, 0.505, 0.5],
}


def test_bounds_worked_out_by_hand(make_toy_frame: ToyFrame, tmp_path) -> None:
    frame = make_toy_frame(tasks=tuple(FINALS), n_configs=5, n_steps=2)
    for task, scores in FINALS.items():
        for cid, score in enumerate(scores):
            frame.loc[(frame.task == task) & (frame.config_id == cid), "val_score"] = score
    result = bounds(read_family(write(frame, tmp_path / "toy.parquet")), ks=(1, 2, 3))
    assert result.n_tasks == 3
    # config 1: (0.25 + 0 + 1) / 3, the lowest mean
    assert result.best_single == pytest.approx(1.25 / 3)
    # a: best of the winners of b, c, d (configs 1, 4, 3) on a = 0.25; b and c: 1 each
    assert result.best_past_winner == pytest.approx(2.25 / 3)
    # greedy: config 1, then config 4 (a .25, b 0, c 0), then config 0 (all 0)
    assert result.portfolio == pytest.approx({1: 1.25 / 3, 2: 0.25 / 3, 3: 0.0})
    assert to_markdown([result]).splitlines()[-1] == "| toy | 3 | 0.417 | 0.750 | 0.417 | 0.083 | 0.000 |"


# Test scores of the same configs: the second sample the noise floor orders configs by.
TESTS = {
    "a": [0.6, 0.7, 0.7, 0.5, 0.5],  # configs 1 and 2 tie first, then config 0
    "b": [0.9, 0.5, 0.5, 0.5, 0.5],  # config 0 first, then four tied
    "c": [0.5, 0.5, 0.5, 0.5, 0.7],  # the validation order itself
    "d": [0.5, 0.5, 0.5, 0.505, 0.5],
}


def test_noise_floor_worked_out_by_hand(make_toy_frame: ToyFrame, tmp_path) -> None:
    frame = make_toy_frame(tasks=tuple(FINALS), n_configs=5, n_steps=2)
    for task in FINALS:
        for cid in range(5):
            rows = (frame.task == task) & (frame.config_id == cid)
            frame.loc[rows, "val_score"] = FINALS[task][cid]
            frame.loc[rows, "test_score"] = TESTS[task][cid]
    result = noise_floor(read_family(write(frame, tmp_path / "toy.parquet")), ks=(1, 2, 3))
    assert result.n_tasks == 3
    # K=1: a takes config 1 or 2 (regret .25 or 1), b config 0 (1), c config 4 (0).
    # K=2: a both (.25); b config 0 and one of four tied with regrets 0, .25, 1, 1 (mean .5625).
    # K=3: a adds config 0 (0); b two of the four: lowest 0 with p 1/2, .25 with 1/3, 1 with 1/6.
    assert result.second_sample == pytest.approx({1: 1.625 / 3, 2: 0.8125 / 3, 3: 0.25 / 3})
    # Every config is in the upper half (val >= median). Spearman on ranks, a: val 5 4 2 2 2,
    # test 3 4.5 4.5 1.5 1.5, 3 / sqrt(8 * 9); b: -2.5 / sqrt(8 * 5); c: 1. The median is a's.
    assert result.upper_half_correlation == pytest.approx(3 / 72**0.5)
    # best - median: a .4 and b .4 in steps of .1, c .2 in steps of .2
    assert result.gap_examples == pytest.approx(4.0)
    assert noise_markdown([result]).splitlines()[-1] == "| toy | 3 | 0.542 | 0.271 | 0.083 | 0.35 | 4.0 |"


@pytest.mark.parametrize("seed", range(20))
def test_expected_best_of_first_is_the_mean_over_every_order_of_the_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    regrets = rng.random(6)
    order_by = rng.integers(0, 3, 6).astype(float)  # many ties
    k = int(rng.integers(1, 7))
    taken = []
    for perm in itertools.permutations(range(6)):
        ranked = sorted(range(6), key=lambda i: (-order_by[i], perm.index(i)))
        taken.append(regrets[ranked[:k]].min())
    assert expected_best_of_first(regrets, order_by, k) == pytest.approx(np.mean(taken))
