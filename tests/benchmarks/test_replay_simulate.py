from pathlib import Path

import numpy as np
import pytest

from autotweak.spec import Component
from benchmarks.replay.data import FamilyData, read_family
from benchmarks.replay.simulate import Design, DesignExhaustedError, Replay, run_study
from tests.benchmarks.conftest import ToyFrame, write


@pytest.fixture
def toy(tmp_path: Path, make_toy_frame: ToyFrame) -> FamilyData:
    return read_family(write(make_toy_frame(n_configs=12, n_steps=4), tmp_path / "toy.parquet"))


def _replay(family: FamilyData, task: str = "a") -> Replay:
    data = family.tasks[task]
    return Replay(data, Design(family.space, data.params))


def test_a_design_config_snaps_to_itself_then_to_its_nearest_unused_neighbour(toy: FamilyData) -> None:
    replay = _replay(toy)
    config = dict(toy.configs[6])  # kind "a"
    assert replay.snap(config) == 6
    second = replay.snap(config)
    units = replay.design.units
    same_kind = [row for row in range(12) if toy.configs[row]["kind"] == "a" and row != 6]
    distances = {row: float(np.sum((units[row] - units[6]) ** 2)) for row in same_kind}
    assert second == min(distances, key=lambda row: (distances[row], row))


def test_categorical_values_must_match_before_distance_counts(toy: FamilyData) -> None:
    replay = _replay(toy)
    near_b = {**toy.configs[3], "kind": "a"}  # config 3 is kind "b": its exact numbers, the other kind
    row = replay.snap(near_b)
    assert toy.configs[row]["kind"] == "a" and row != 3


def test_when_a_category_is_used_up_the_nearest_unused_config_of_any_category_is_taken(
    toy: FamilyData,
) -> None:
    replay = _replay(toy)
    for row in range(0, 12, 2):  # every kind "a" config
        replay.evaluate(row)
    assert toy.configs[replay.snap(dict(toy.configs[0]))]["kind"] == "b"


def test_a_study_never_reuses_a_config_and_stops_when_the_design_is_used_up(toy: FamilyData) -> None:
    replay = _replay(toy)
    trials = run_study(replay, toy.space, seed=0, budget=50, sampler=Component("tpe"))
    assert len(trials) == 12
    assert sorted(t.config_id for t in trials) == list(range(12))
    with pytest.raises(DesignExhaustedError):
        replay.snap(dict(toy.configs[0]))


def test_pruned_trials_cost_the_steps_they_read(toy: FamilyData) -> None:
    replay = _replay(toy)
    pruner = Component("median", {"n_startup_trials": 2})
    trials = run_study(replay, toy.space, seed=1, budget=12, sampler=Component("random"), pruner=pruner)
    task = toy.tasks["a"]
    pruned = [t for t in trials if not t.complete]
    assert pruned, "the median pruner should stop some trials of this curve set"
    for trial in trials:
        row = trial.config_id
        assert trial.compute == trial.steps_read / 4
        assert trial.seconds == pytest.approx(task.fit_seconds[row] * trial.steps_read / 4)
        assert trial.val == task.val[row, trial.steps_read - 1]
        assert trial.test == task.test[row, trial.steps_read - 1]
    assert all(t.steps_read == 4 for t in trials if t.complete)
    assert replay.clock == pytest.approx(sum(t.seconds for t in trials))


def test_the_engine_sees_the_curve_it_would_see(toy: FamilyData) -> None:
    replay = _replay(toy)
    seen: list[list[float]] = []
    original = replay.play

    def spy(trial, study):  # type: ignore[no-untyped-def]
        record = original(trial, study)
        seen.append([value for _, value in trial.steps])
        return record

    replay.play = spy  # type: ignore[method-assign]
    trials = run_study(replay, toy.space, seed=0, budget=3, sampler=Component("random"))
    for trial, curve in zip(trials, seen, strict=True):
        assert curve == toy.tasks["a"].val[trial.config_id, : trial.steps_read].tolist()


def test_enqueued_configs_are_proposed_first_in_order(toy: FamilyData) -> None:
    replay = _replay(toy)
    first = [toy.configs[9], toy.configs[2], toy.configs[5]]
    trials = run_study(replay, toy.space, seed=0, budget=5, sampler=Component("tpe"), first=first)
    assert [t.config_id for t in trials[:3]] == [9, 2, 5]
    assert len(trials) == 5


def test_enqueued_configs_never_exceed_the_budget(toy: FamilyData) -> None:
    replay = _replay(toy)
    first = [toy.configs[i] for i in range(6)]
    assert len(run_study(replay, toy.space, seed=0, budget=2, sampler=Component("tpe"), first=first)) == 2
