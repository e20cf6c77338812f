from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from benchmarks.replay import METHODS, Design, Replay, SearchSetup
from benchmarks.replay.data import FamilyData, read_family
from benchmarks.replay.portfolio import greedy_portfolio
from benchmarks.replay.runner import plan_jobs, public_suite
from benchmarks.replay.splits import (
    Split,
    all_scores,
    external_splits,
    group_of,
    history_for,
    leave_one_task_out,
    sparse_scores,
)

TASKS = ["keel_bupa", "keel_iris", "keel_optdigits", "keel_wine", "sklearn_digits", "sklearn_iris"]


@pytest.fixture
def hgb(make_hgb_file: Callable[..., Path]) -> FamilyData:
    return read_family(make_hgb_file(TASKS, n_configs=24))


def _perturbed(family: FamilyData, tasks: set[str]) -> FamilyData:
    """``family`` with the curves of ``tasks`` replaced by other numbers."""
    rng = np.random.default_rng(123)
    changed = {
        name: replace(data, val=rng.uniform(size=data.val.shape), test=rng.uniform(size=data.test.shape))
        if name in tasks
        else data
        for name, data in family.tasks.items()
    }
    return replace(family, tasks=changed)


def test_leave_one_task_out_leaves_the_whole_duplicate_group_out() -> None:
    splits = {split.test: split.train for split in leave_one_task_out(TASKS)}
    assert (
        splits["keel_iris"]
        == splits["sklearn_iris"]
        == ["keel_bupa", "keel_optdigits", "keel_wine", "sklearn_digits"]
    )
    assert (
        "keel_optdigits" not in splits["sklearn_digits"] and "sklearn_digits" not in splits["keel_optdigits"]
    )
    assert splits["keel_bupa"] == [t for t in TASKS if t != "keel_bupa"]
    assert group_of("keel_wdbc") == {"keel_wdbc", "sklearn_breast_cancer"}
    assert group_of("keel_bupa") == {"keel_bupa"}


def test_external_tasks_train_on_every_public_task() -> None:
    assert external_splits(["b", "a"], ["x"]) == [Split("x", ["a", "b"])]


def test_sparse_scores_come_from_one_seeded_tpe_run(hgb: FamilyData) -> None:
    scores = sparse_scores(hgb, "keel_bupa", trials=10)
    assert len(scores) == 10
    assert scores == sparse_scores(hgb, "keel_bupa", trials=10)
    final = dict(
        zip(hgb.tasks["keel_bupa"].config_ids.tolist(), hgb.tasks["keel_bupa"].final_val, strict=True)
    )
    assert all(scores[cid] == final[cid] for cid in scores)


def _portfolio(family: FamilyData, test: str, regime: str) -> list[int]:
    split = next(s for s in leave_one_task_out(family.tasks) if s.test == test)
    history = history_for(split, regime, family, all_scores(family, regime, list(family.tasks)))
    return greedy_portfolio(history, 8, family.space)


def _proposals(family: FamilyData, test: str, regime: str) -> list[int]:
    """The config ids greedy_portfolio runs first on ``test``, through the engine."""
    split = next(s for s in leave_one_task_out(family.tasks) if s.test == test)
    history = history_for(split, regime, family, all_scores(family, regime, list(family.tasks)))
    data = family.tasks[test]
    replay = Replay(data, Design(family.space, data.params))
    METHODS["greedy_portfolio"]().search(replay, SearchSetup(family.space, 0, 24, history))
    return [t.config_id for t in replay.trials]


@pytest.mark.parametrize("regime", ["dense", "sparse"])
def test_nothing_of_the_test_task_or_its_twins_reaches_meta_training(hgb: FamilyData, regime: str) -> None:
    portfolio = _portfolio(hgb, "keel_iris", regime)
    assert portfolio
    changed = _perturbed(hgb, {"keel_iris", "sklearn_iris"})
    assert _portfolio(changed, "keel_iris", regime) == portfolio
    n = len(portfolio)
    assert (
        _proposals(changed, "keel_iris", regime)[:n] == _proposals(hgb, "keel_iris", regime)[:n] == portfolio
    )


def test_the_leak_check_would_see_a_change_of_training_data(hgb: FamilyData) -> None:
    changed = _perturbed(hgb, {"keel_bupa", "keel_wine", "keel_optdigits", "sklearn_digits"})
    assert _portfolio(changed, "keel_iris", "dense") != _portfolio(hgb, "keel_iris", "dense")


def test_planned_jobs_carry_only_training_tasks(hgb: FamilyData) -> None:
    suite = public_suite(hgb, ["sklearn_iris", "sklearn_digits"])
    histories = {(str(hgb.path), r): all_scores(hgb, r, list(hgb.tasks)) for r in ("dense", "sparse")}
    jobs = plan_jobs([suite], ["tpe", "greedy_portfolio"], [0], 5, histories)
    meta = [job for job in jobs if job.history is not None]
    assert {(j.task, j.regime) for j in meta} == {
        (t, r) for t in ("sklearn_iris", "sklearn_digits") for r in ("dense", "sparse")
    }
    for job in meta:
        assert job.history is not None
        assert not set(job.history.scores) & group_of(job.task)
    assert all(job.history is None for job in jobs if job.method == "tpe")
