"""The leaked-choice bounds, on a family whose answers are worked out by hand."""

from __future__ import annotations

import pytest

from benchmarks.bounds import bounds, to_markdown
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
