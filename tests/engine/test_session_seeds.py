"""A seeded study is reproducible in its first session and draws new configs in each later one.

A resumed study, or a worker that joins it, must not propose again the configs that the
first session's samplers already drew.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

import autotweak
from autotweak._locations import resolve_storage_url
from autotweak.engine._join import join
from autotweak.engine._storage import make_storage
from autotweak.engine._study import ATTR
from autotweak.spec import Experiment
from tests.conftest import objective
from tests.helpers import load


def _xs(study: optuna.Study) -> list[float]:
    return [t.params["x"] for t in sorted(study.trials, key=lambda t: t.number)]


def _random_sampler_xs(seed: int, n: int) -> list[float]:
    """What a plain Optuna RandomSampler with this seed proposes, as the first session did."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return [study.ask().suggest_float("x", -5.0, 5.0) for _ in range(n)]


@pytest.mark.parametrize("sampler", [pytest.param("random", marks=pytest.mark.slow), "tpe"])
def test_each_resume_draws_new_configs_and_the_first_session_is_reproducible(
    home: Path, make_experiment: Callable[..., Experiment], sampler: str
) -> None:
    exp = make_experiment(name=f"resumed-{sampler}", sampler=sampler, base={}, budget={"trials": 3})
    autotweak.optimize(exp)
    for trials in (5, 7):
        autotweak.optimize(exp.with_overrides(budget=autotweak.Budget(trials=trials)), resume=True)
    xs = _xs(load(exp))
    assert len(xs) == 7 and len(set(xs)) == 7, xs
    # a fresh study with the same seed proposes what it did before: the same first session
    again = make_experiment(name=f"again-{sampler}", sampler=sampler, base={}, budget={"trials": 3})
    autotweak.optimize(again)
    assert _xs(load(again)) == xs[:3]
    if sampler == "random":
        assert xs[:3] == pytest.approx(_random_sampler_xs(0, 3))


def test_each_worker_that_starts_claims_its_own_seed(
    home: Path, make_experiment: Callable[..., Experiment]
) -> None:
    from autotweak.engine._worker import session_seed

    exp = make_experiment(name="claims", base={}, seed=7)
    autotweak.optimize(exp.with_overrides(budget=autotweak.Budget(trials=1)))
    url = resolve_storage_url(None)
    storage = make_storage(url)
    claims = [session_seed(storage, url, "claims", 7, index) for index in (0, 1, 0, 1, 0)]
    assert len(set(claims)) == 5, claims
    assert 7 not in claims, "the first session's worker 0 drew with seed 7"
    assert claims[1] == 8, "worker 1 had not started yet: its first session uses seed + 1"
    assert session_seed(storage, url, "claims", None, 0) is None


def test_a_study_from_before_session_seeds_is_not_taken_for_a_first_session(home: Path) -> None:
    from autotweak.engine._worker import session_seed

    url = f"sqlite:///{home / 'old.db'}"
    storage = make_storage(url)
    study = optuna.create_study(study_name="old", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert session_seed(storage, url, "old", 3, 0) != 3
    assert session_seed(storage, url, "old", 3, 1) != 4


def _join(name: str) -> None:
    join(name)


def test_two_joining_workers_repeat_neither_the_study_nor_each_other(
    home: Path, make_experiment: Callable[..., Experiment]
) -> None:
    marker = home / "marks.txt"
    exp = make_experiment(
        name="joined",
        objective=objective("marked"),
        base={"marker": str(marker), "sleep": 0.05},
        budget={"trials": 2},
    )
    autotweak.optimize(exp)
    study = load(exp)
    spec = study.user_attrs[ATTR.SPEC]
    study.set_user_attr(ATTR.SPEC, {**spec, "budget": {**spec["budget"], "trials": 10}})
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_join, args=("joined",)) for _ in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=180)
        assert proc.exitcode == 0
    xs = _xs(load(exp))
    assert len(xs) == 10 and len(set(xs)) == 10, xs


def test_a_reopened_ask_tell_study_draws_new_configs(
    home: Path, make_experiment: Callable[..., Experiment]
) -> None:
    """The ask/tell API: the study reopened with ``resume=True`` does not repeat its first configs."""
    exp = make_experiment(name="asked", sampler="random", base={}, budget={"trials": 6})
    for resume in (False, True):
        with autotweak.Study(exp, resume=resume) as study:
            for _ in range(3):
                trial = study.ask()
                study.tell(trial, trial.config["x"] ** 2)
    xs = _xs(load(exp))
    assert len(xs) == 6 and len(set(xs)) == 6, xs
    assert xs[:3] == _random_sampler_xs(0, 3), "the first session is as reproducible as before"


def test_an_ask_tell_trial_records_the_seed_its_sampler_drew_from(
    home: Path, make_experiment: Callable[..., Experiment]
) -> None:
    from mlflow import MlflowClient

    from tests.helpers import mlflow_runs

    exp = make_experiment(name="seeded", sampler="random", base={}, budget={"trials": 4})
    for resume in (False, True):
        with autotweak.Study(exp, resume=resume) as study:
            trial = study.ask()
            study.tell(trial, 1.0)
    runs = mlflow_runs(MlflowClient(f"sqlite:///{home / 'mlflow.db'}"), "seeded")
    seeds = [run.data.tags["autotweak.seed"] for run in runs.children.values()]
    assert len(seeds) == 2 and seeds[0] != seeds[1], f"the reopened session draws from its own seed: {seeds}"
