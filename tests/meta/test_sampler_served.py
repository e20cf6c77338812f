"""MetaSampler records only the proposals a trial ran whole; other spaces get the base sampler."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import optuna
import pytest

from autotweak import SearchSpace
from autotweak.meta import (
    PROPOSAL_ATTR,
    Histories,
    MetaSampler,
    PastTrial,
    TaskHistory,
    fit_meta_model,
    guard_of,
    proposals_of,
)
from tests.meta._helpers import SeeingSampler

SPACE = SearchSpace.from_dict(
    {"x": {"type": "float", "low": 0.0, "high": 10.0}, "k": {"type": "int", "low": 1, "high": 5}}
)


def _histories(peaks: list[float], *, n: int = 30) -> Histories:
    rng = np.random.default_rng(0)
    tasks = []
    for i, peak in enumerate(peaks):
        configs = [
            {"x": float(x), "k": int(k)}
            for x, k in zip(rng.uniform(0, 10, n), rng.integers(1, 6, n), strict=True)
        ]
        trials = tuple(PastTrial(c, -abs(c["x"] - peak) - 0.1 * abs(c["k"] - 3)) for c in configs)
        tasks.append(TaskHistory(f"task{i}", "maximize", trials))
    return Histories(tuple(tasks))


MODEL = fit_meta_model(_histories([0.5 + 4 * i / 11 for i in range(12)]), SPACE, n_design=64)


def _ran_what_was_recorded(study: optuna.Study) -> None:
    for trial in study.trials:
        record = trial.system_attrs.get(PROPOSAL_ATTR)
        if record is not None:
            assert record["params"] == {name: trial.params[name] for name in record["params"]}, trial.number


@pytest.mark.parametrize("seed", range(4))
def test_a_study_of_another_space_is_exactly_its_base_sampler(seed: int) -> None:
    base = SeeingSampler()
    study = optuna.create_study(sampler=MetaSampler(MODEL, base, seed=seed))
    study.optimize(lambda t: -((t.suggest_float("a", 0, 1) - 0.3) ** 2), n_trials=14)
    assert proposals_of(study.trials) == []
    assert all(PROPOSAL_ATTR not in t.system_attrs for t in study.trials)
    assert guard_of(study) is None
    assert base.seen[13] == set(range(14)), "the base sampler sees every trial"


def _narrow(trial: optuna.Trial) -> float:
    k = trial.suggest_int("k", 1, 5)  # suggested first: its proposed value fits
    x = trial.suggest_float("x", 0.0, 2.0)  # narrower than the model's [0, 10]
    return -abs(x - 1.5) - 0.1 * abs(k - 3)


def test_a_narrower_range_gets_proposals_inside_it_and_no_half_served_record() -> None:
    study = optuna.create_study(direction="maximize", sampler=MetaSampler(MODEL, seed=0, n_meta=5))
    study.optimize(_narrow, n_trials=8)
    _ran_what_was_recorded(study)
    proposed = [p["trial_number"] for p in proposals_of(study.trials)]
    # The first proposal (x near 3) did not fit [0, 2]: that trial is no proposal; the
    # next ones are drawn from the candidates inside the ranges the study uses.
    assert 0 not in proposed and proposed == [1, 2, 3, 4, 5]
    assert all(0.0 <= t.params["x"] <= 2.0 for t in study.trials)


def test_a_trial_that_sets_part_of_the_models_space_is_no_proposal() -> None:
    base = SeeingSampler()
    study = optuna.create_study(direction="maximize", sampler=MetaSampler(MODEL, base, n_meta=5))
    study.optimize(lambda t: -abs(t.suggest_float("x", 0.0, 10.0) - 3.0), n_trials=6)  # no "k"
    assert proposals_of(study.trials) == [] and guard_of(study) is None
    assert base.seen[5] == set(range(6))


def test_a_proposal_served_whole_is_recorded_once_its_last_parameter_is_set() -> None:
    study = optuna.create_study(direction="maximize", sampler=MetaSampler(MODEL, seed=0))
    trial = study.ask()
    x = trial.suggest_float("x", 0.0, 10.0)
    assert PROPOSAL_ATTR not in study._storage.get_trial_system_attrs(trial._trial_id)
    k = trial.suggest_int("k", 1, 5)
    record = study._storage.get_trial_system_attrs(trial._trial_id)[PROPOSAL_ATTR]
    assert record["params"] == {"x": x, "k": k}
    study.tell(trial, 0.0)
    assert [p["trial_number"] for p in proposals_of(study.trials)] == [0]


def test_a_single_valued_range_that_holds_the_proposed_value_completes_the_proposal() -> None:
    planned = MetaSampler(MODEL, seed=0).plan(1)[0].params
    study = optuna.create_study(direction="maximize", sampler=MetaSampler(MODEL, seed=0))
    trial = study.ask()
    trial.suggest_float("x", 0.0, 10.0)
    trial.suggest_int("k", planned["k"], planned["k"])  # Optuna gives the value; no sampler is asked
    study.tell(trial, 0.0)
    assert [p["params"] for p in proposals_of(study.trials)] == [planned]


@pytest.mark.parametrize(
    "objective",
    [
        lambda t: t.suggest_float("x", 0.0, 10.0) + t.suggest_int("k", 1, 5),
        lambda t: t.suggest_int("k", 1, 5) + t.suggest_float("x", 0.0, 10.0) + t.suggest_float("y", 0, 1),
    ],
)
def test_the_models_space_in_any_order_and_with_more_parameters_is_served(
    objective: Callable[[optuna.Trial], float],
) -> None:
    study = optuna.create_study(direction="maximize", sampler=MetaSampler(MODEL, seed=0, n_meta=3))
    study.optimize(objective, n_trials=4)
    _ran_what_was_recorded(study)
    assert [p["trial_number"] for p in proposals_of(study.trials)] == [0, 1, 2]


def test_under_hyperband_the_proposals_are_counted_over_the_whole_study_not_a_bracket() -> None:
    """Hyperband gives samplers the trials of the asking trial's bracket only."""
    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=9, reduction_factor=3)
    study = optuna.create_study(
        direction="maximize", sampler=MetaSampler(MODEL, seed=0, n_meta=6), pruner=pruner
    )

    def objective(trial: optuna.Trial) -> float:
        x, k = trial.suggest_float("x", 0.0, 10.0), trial.suggest_int("k", 1, 5)
        for step in range(1, 10):
            trial.report(-abs(x - 3) * (1 + 1 / step), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return -abs(x - 3) - 0.1 * abs(k - 3)

    study.optimize(objective, n_trials=24)
    brackets = {pruner._get_bracket_id(study, t) for t in study.trials}
    assert len(brackets) > 1, "the trials fall in several brackets"
    proposed = [t for t in study.trials if PROPOSAL_ATTR in t.system_attrs]
    assert len(proposed) == 6
    configs = [(t.params["x"], t.params["k"]) for t in proposed]
    assert len(set(configs)) == 6, "no proposal runs twice"
    _ran_what_was_recorded(study)


def test_with_one_past_task_the_proposals_after_its_best_follow_its_scores() -> None:
    """One past task is covered by its best config: the greedy gain is flat after it."""
    rng = np.random.default_rng(1)
    configs = [
        {"x": float(x), "k": int(k)}
        for x, k in zip(rng.uniform(0, 10, 20), rng.integers(1, 6, 20), strict=True)
    ]
    history = Histories(
        (TaskHistory("only", "maximize", tuple(PastTrial(c, -abs(c["x"] - 3)) for c in configs)),)
    )
    proposals = MetaSampler(fit_meta_model(history, SPACE, n_design=16), seed=0).plan(6)
    predicted = [p.predicted for p in proposals]
    assert predicted[0] == pytest.approx(1.0), "the past task's best first"
    assert predicted == sorted(predicted, reverse=True), predicted
    assert predicted[-1] > 0.5, "never a config the past task ranks low"


def test_a_proposal_another_worker_has_started_to_suggest_is_not_proposed_again() -> None:
    """Workers ask one at a time (the ask lock) and suggest after it, each param a storage write.

    A proposal is decided when its trial is asked for, and held there for other processes
    from then on, not once its values are stored.
    """
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(
        study_name="s", storage=storage, direction="maximize", sampler=MetaSampler(MODEL, seed=0, n_meta=3)
    )
    first = study.ask()
    first.suggest_float("x", 0.0, 10.0)  # and "k" still to come
    other = optuna.load_study(study_name="s", storage=storage, sampler=MetaSampler(MODEL, seed=0, n_meta=3))
    second = other.ask()  # another process: its sampler knows nothing of the first trial
    second.suggest_float("x", 0.0, 10.0)
    second.suggest_int("k", 1, 5)
    first.suggest_int("k", 1, 5)
    study.tell(first, 1.0)
    other.tell(second, 0.0)
    _ran_what_was_recorded(study)
    proposed = proposals_of(study.trials)
    assert [p["trial_number"] for p in proposed] == [0, 1]
    assert proposed[0]["params"] != proposed[1]["params"]
