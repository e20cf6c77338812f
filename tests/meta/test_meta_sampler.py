"""MetaSampler: Optuna's own sampler suites, with and without a meta-model, and the meta phase."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.testing.pytest_samplers import (
    BasicSamplerTestCase,
    MultiObjectiveSamplerTestCase,
    RelativeSamplerTestCase,
)

from autotweak import SearchSpace
from autotweak.meta import (
    GUARD_ATTR,
    PROPOSAL_ATTR,
    Histories,
    MetaModelError,
    MetaSampler,
    PastTrial,
    TaskHistory,
    fit_meta_model,
    guard_of,
    proposals_of,
)
from tests.meta._helpers import SeeingSampler

SPACE = SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 10.0}})


def _histories(peaks: list[float], *, n: int = 20, seed: int = 0) -> Histories:
    """Past tasks whose score peaks at ``peak`` (one task per peak)."""
    rng = np.random.default_rng(seed)
    tasks = []
    for i, peak in enumerate(peaks):
        xs = rng.uniform(0, 10, n)
        trials = tuple(PastTrial({"x": float(x)}, -abs(float(x) - peak)) for x in xs)
        tasks.append(TaskHistory(f"task{i}", "maximize", trials))
    return Histories(tuple(tasks))


# Twelve past tasks peaking between 0.5 and 4.5: after the bests of three, later proposals
# would be the near-best configs of those three, and the guard would judge close configs.
MODEL = fit_meta_model(_histories([0.5 + 4 * i / 11 for i in range(12)]), SPACE, n_design=64)


class TestWithoutModel(BasicSamplerTestCase, MultiObjectiveSamplerTestCase):
    @pytest.fixture
    def sampler(self) -> Callable[[], optuna.samplers.BaseSampler]:
        return lambda: MetaSampler(seed=0)


class TestWithModel(BasicSamplerTestCase, MultiObjectiveSamplerTestCase):
    @pytest.fixture
    def sampler(self) -> Callable[[], optuna.samplers.BaseSampler]:
        return lambda: MetaSampler(MODEL, seed=0)


class TestWithModelAndMultivariateTPE(
    BasicSamplerTestCase, RelativeSamplerTestCase, MultiObjectiveSamplerTestCase
):
    @pytest.fixture
    def sampler(self) -> Callable[[], optuna.samplers.BaseSampler]:
        base = optuna.samplers.TPESampler
        return lambda: MetaSampler(MODEL, base(multivariate=True, n_startup_trials=0, seed=0))


def _objective(peak: float) -> Callable[[optuna.Trial], float]:
    return lambda trial: -abs(trial.suggest_float("x", 0.0, 10.0) - peak)


def test_first_proposals_come_from_the_past_and_are_recorded() -> None:
    study = optuna.create_study(direction="maximize", sampler=MetaSampler(MODEL, seed=0, n_meta=3))
    study.optimize(_objective(2.5), n_trials=6)
    proposals = proposals_of(study.trials)
    assert [p["trial_number"] for p in proposals] == [0, 1, 2]
    assert abs(study.trials[0].params["x"] - 2.5) < 1.0  # the past tasks all peak near 2.5
    first = proposals[0]
    assert first["value"] == study.trials[0].value
    assert {s["task"] for s in first["sources"]} <= {f"task{i}" for i in range(12)}
    assert 0.0 <= first["predicted"] <= 1.0 and first["uncertainty"] >= 0.0


def test_minimized_metrics_are_oriented() -> None:
    study = optuna.create_study(direction="minimize", sampler=MetaSampler(MODEL, seed=0, n_meta=2))
    study.optimize(lambda t: abs(t.suggest_float("x", 0.0, 10.0) - 2.5), n_trials=2)
    assert abs(study.trials[0].params["x"] - 2.5) < 1.0


def test_the_guard_falls_back_when_the_past_disagrees(caplog: pytest.LogCaptureFixture) -> None:
    # Past tasks peak at 2-3, this one at 9: the prior ranks its results backwards.
    sampler = MetaSampler(MODEL, seed=0, n_meta=20, guard_after=4)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        study.optimize(_objective(9.0), n_trials=20)
    guard = study._storage.get_study_system_attrs(study._study_id)[GUARD_ATTR]
    assert guard["tau"] < 0 and guard["results"] >= 4
    assert len(proposals_of(study.trials)) < 20
    said = [r.getMessage() for r in caplog.records if "no better than chance" in r.getMessage()]
    assert len(said) == 1 and "falling back to the cold sampler" in said[0], "a warning, once"


def _proposed(study: optuna.Study) -> set[int]:
    return {int(p["trial_number"]) for p in proposals_of(study.trials)}


def test_after_the_guard_the_base_sampler_no_longer_sees_the_proposals() -> None:
    base = SeeingSampler()
    study = optuna.create_study(
        direction="maximize", sampler=MetaSampler(MODEL, base, n_meta=20, guard_after=4)
    )
    study.optimize(_objective(9.0), n_trials=12)
    assert GUARD_ATTR in study._storage.get_study_system_attrs(study._study_id)
    proposed = _proposed(study)
    cold = sorted(set(range(12)) - proposed)
    assert proposed and len(cold) >= 3
    # Each cold trial sees itself and the cold trials before it, none of the proposals.
    assert [base.seen[n] for n in cold] == [set(cold[: i + 1]) for i in range(len(cold))]


def test_a_worker_past_its_proposals_turns_cold_when_another_trips_the_guard() -> None:
    base = SeeingSampler()
    study = optuna.create_study(
        direction="maximize", sampler=MetaSampler(MODEL, base, n_meta=2, guard_after=100)
    )
    study.optimize(_objective(2.5), n_trials=3)
    assert _proposed(study) == {0, 1} and base.seen[2] == {0, 1, 2}
    study._storage.set_study_system_attr(study._study_id, GUARD_ATTR, {"tau": -0.5})  # another worker
    study.optimize(_objective(2.5), n_trials=1)
    assert base.seen[3] == {2, 3}


def test_no_guard_when_the_past_agrees() -> None:
    study = optuna.create_study(
        direction="maximize", sampler=MetaSampler(MODEL, seed=0, n_meta=8, guard_after=4)
    )
    study.optimize(_objective(2.5), n_trials=8)
    assert GUARD_ATTR not in study._storage.get_study_system_attrs(study._study_id)
    assert len(proposals_of(study.trials)) == 8


def test_enqueued_trials_are_left_alone() -> None:
    study = optuna.create_study(direction="maximize", sampler=MetaSampler(MODEL, seed=0))
    study.enqueue_trial({"x": 7.0})
    study.optimize(_objective(2.5), n_trials=2)
    assert study.trials[0].params["x"] == 7.0
    assert [p["trial_number"] for p in proposals_of(study.trials)] == [1]


def test_an_objective_of_another_space_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    """Plain Optuna: an objective that suggests none of the model's params gets no proposal, and is told."""
    study = optuna.create_study(sampler=MetaSampler(MODEL, seed=0))
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        study.optimize(lambda t: t.suggest_float("lr", 0.0, 1.0), n_trials=4)
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert said == [
        "meta-learner: trial 0 set no x, which the meta-model's space has: the objective suggests another "
        "space (the proposals are the meta-model's params, by name), so the meta-model proposes nothing in "
        "this study; the base sampler takes over"
    ], "once per study"
    assert proposals_of(study.trials) == []


def test_a_param_of_another_kind_goes_to_the_base_sampler() -> None:
    study = optuna.create_study(sampler=MetaSampler(MODEL, seed=0))
    study.optimize(lambda t: float(t.suggest_int("x", 100, 200)), n_trials=3)
    assert all(100 <= t.params["x"] <= 200 for t in study.trials)


def test_workers_in_threads_never_get_the_same_proposal() -> None:
    study = optuna.create_study(direction="maximize", sampler=MetaSampler(MODEL, seed=0, n_meta=6))
    study.optimize(_objective(2.5), n_trials=6, n_jobs=2)
    xs = [p["params"]["x"] for p in proposals_of(study.trials)]
    assert len(xs) == len(set(xs))


def test_the_plan_is_what_a_study_runs_before_its_first_result() -> None:
    planned = MetaSampler(MODEL, seed=0).plan(3, first=[{"x": 2.5}, {"y": 1}])  # {"y": 1} does not fit
    study = optuna.create_study(direction="maximize", sampler=MetaSampler(MODEL, seed=0))
    study.enqueue_trial({"x": 2.5})
    # Four trials open at once, as with parallel workers: no result is in for any proposal.
    trials = [study.ask() for _ in range(4)]
    for trial in trials:
        trial.suggest_float("x", 0.0, 10.0)
    assert [t.params["x"] for t in trials[1:]] == [p.params["x"] for p in planned]
    assert len({p.index for p in planned}) == 3
    assert MetaSampler(seed=0).plan(3) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            {"model": 42},
            "'model' of MetaSampler must be a MetaModel, a meta-model file or None, got model=42",
        ),
        ({"model": "auto"}, r"'model' .*resolve_meta_model\(model, space\)\), got model='auto'"),
        ({"base": "tpe"}, "'base' of MetaSampler must be an Optuna sampler or None, got base='tpe'"),
        (
            {"base": optuna.samplers.GridSampler({"x": [1.0, 2.0]})},
            "'base' of MetaSampler must be a sampler other than GridSampler",
        ),
        ({"n_meta": -1}, "'n_meta' of MetaSampler must be an integer >= 0, got n_meta=-1"),
        ({"n_meta": 2.5}, "'n_meta' .* got n_meta=2.5"),
        ({"n_meta": True}, "'n_meta' .* got n_meta=True"),
        ({"guard_after": 1}, "'guard_after' of MetaSampler must be an integer >= 2, got guard_after=1"),
        ({"guard_threshold": "x"}, r"'guard_threshold' .* a number in \[-1, 1\] .*got guard_threshold='x'"),
        ({"guard_threshold": 1.5}, "got guard_threshold=1.5"),
        ({"guard_threshold": float("nan")}, "got guard_threshold=nan"),
        ({"descriptor": [1, 2]}, "'descriptor' .* a mapping of feature names to numbers or strings, or None"),
        ({"descriptor": {"n_rows": [1]}}, r"got descriptor=\{'n_rows': \[1\]\}"),
        ({"descriptor": {"binary": True}}, r"got descriptor=\{'binary': True\}"),
    ],
)
def test_bad_arguments_are_refused_naming_the_argument(args: dict[str, object], message: str) -> None:
    from autotweak import AutotweakError
    from autotweak.meta import MetaSamplerArgumentError

    with pytest.raises(MetaSamplerArgumentError, match=message) as caught:
        MetaSampler(**{"model": MODEL, **args})  # type: ignore[arg-type]
    assert isinstance(caught.value, AutotweakError) and isinstance(caught.value, ValueError)


def test_numpy_numbers_are_accepted() -> None:
    n_meta, guard_after = np.int64(3), np.int32(4)
    sampler = MetaSampler(MODEL, n_meta=n_meta, guard_after=guard_after, guard_threshold=np.float64(0.1))  # type: ignore[arg-type]
    assert (sampler.n_meta, sampler.guard_after, sampler.guard_threshold) == (3, 4, 0.1)
    assert MetaSampler(MODEL, descriptor={"n_rows": np.int64(5), "family": "hgb"}).proposer is not None


def test_a_model_file_is_read(tmp_path: Path) -> None:
    path = MODEL.save(tmp_path / "m.meta.npz")
    for given in (path, str(path)):
        sampler = MetaSampler(given, seed=0)
        assert sampler.model is not None and sampler.model.digest == MODEL.digest
    with pytest.raises(MetaModelError, match=r"nope\.meta\.npz"):
        MetaSampler(tmp_path / "nope.meta.npz")


def test_the_guard_and_the_proposal_attributes_are_read_as_documented() -> None:
    import autotweak.meta._sampler as module

    assert f"``{PROPOSAL_ATTR}``" in str(module.__doc__) and f"``{GUARD_ATTR}``" in str(module.__doc__)
    study = optuna.create_study(direction="maximize", sampler=MetaSampler(MODEL, n_meta=20, guard_after=4))
    study.optimize(_objective(9.0), n_trials=8)
    guard = guard_of(study)
    assert guard == study._storage.get_study_system_attrs(study._study_id)[GUARD_ATTR]
    assert guard is not None and guard["tau"] < 0 and guard["threshold"] == 0.0
    assert guard_of(optuna.create_study()) is None


def _right_near_the_past_peak(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", 0, 10)
    return -abs(x - 2.3) if x < 5 else x  # near the past's peak the prior is right; far away, wrong


def test_the_guards_verdict_is_the_same_in_a_process_that_joins_after_the_hand_over() -> None:
    """A resumed study or a late worker judges the meta phase's trials, not the base sampler's after it."""
    model = fit_meta_model(_histories([2 + 0.2 * i for i in range(6)]), SPACE, n_design=32)
    storage = optuna.storages.InMemoryStorage()

    def sampler() -> MetaSampler:
        return MetaSampler(model, seed=0, n_meta=4, guard_after=3)

    study = optuna.create_study(direction="maximize", storage=storage, study_name="s", sampler=sampler())
    study.optimize(_right_near_the_past_peak, n_trials=30)
    assert guard_of(study) is None
    joined = optuna.load_study(study_name="s", storage=storage, sampler=sampler())
    joined.optimize(_right_near_the_past_peak, n_trials=1)
    assert guard_of(joined) is None, "the same storage, the same verdict"


def test_one_sampler_object_serves_its_proposals_to_each_study_it_is_given() -> None:
    sampler = MetaSampler(MODEL, seed=0, n_meta=3)
    for _ in range(2):  # two in-memory storages: both number their first study and trial 0
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(lambda t: -abs(t.suggest_float("x", 0, 10) - 2.0), n_trials=5)
        assert [p["trial_number"] for p in proposals_of(study.trials)] == [0, 1, 2]


def test_a_sampler_pickles_and_copies_as_optuna_samplers_do() -> None:
    import copy
    import pickle

    sampler = MetaSampler(MODEL, seed=0, n_meta=2)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: -abs(t.suggest_float("x", 0, 10) - 2.0), n_trials=3)
    for again in (pickle.loads(pickle.dumps(sampler)), copy.deepcopy(sampler)):
        other = optuna.create_study(direction="maximize", sampler=again)
        other.optimize(lambda t: -abs(t.suggest_float("x", 0, 10) - 2.0), n_trials=3)
        assert len(proposals_of(other.trials)) == 2


def test_an_int_parameter_of_the_model_is_not_served_to_suggest_float() -> None:
    ints = SearchSpace.from_dict({"n": {"type": "int", "low": 1, "high": 64}})
    past = Histories(
        tuple(
            TaskHistory(
                f"t{i}", "maximize", tuple(PastTrial({"n": n}, -abs(n - 20 - i)) for n in range(1, 64, 3))
            )
            for i in range(4)
        )
    )
    study = optuna.create_study(direction="maximize", sampler=MetaSampler(fit_meta_model(past, ints), seed=0))
    study.optimize(lambda t: -abs(t.suggest_float("n", 1, 64) - 20), n_trials=4)
    assert all(isinstance(t.params["n"], float) for t in study.trials)
    assert proposals_of(study.trials) == [], "the study's n is a float: the model's int proposals do not fit"


def test_a_multi_objective_study_gets_no_proposals_and_proposals_of_says_so() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=MetaSampler(MODEL, seed=0))
    study.optimize(lambda t: (t.suggest_float("x", 0, 10), 1.0), n_trials=3)
    assert proposals_of(study.trials) == [], "the base sampler alone; no error either"


def test_a_proposal_another_worker_is_still_suggesting_is_not_proposed_again() -> None:
    """Between the proposal's record and the storage of its last value, another worker reads it."""
    storage = optuna.storages.InMemoryStorage()
    first = MetaSampler(MODEL, seed=0, n_meta=3)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize", sampler=first)
    trial = study.ask()
    distribution = optuna.distributions.FloatDistribution(0.0, 10.0)
    served = first.sample_independent(study, storage.get_trial(trial._trial_id), "x", distribution)
    assert isinstance(storage.get_trial(trial._trial_id).system_attrs.get(PROPOSAL_ATTR), dict)
    assert "x" not in storage.get_trial(trial._trial_id).params  # Optuna has not stored it yet

    other = optuna.load_study(study_name="s", storage=storage, sampler=MetaSampler(MODEL, seed=0, n_meta=3))
    second = other.ask()
    assert second.suggest_float("x", 0.0, 10.0) != served
