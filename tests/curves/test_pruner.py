"""LearnedCurvePruner in plain Optuna studies and through autotweak's registry."""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from autotweak.curves import ATTR_PREFIX, CurveModel, LearnedCurvePruner, PrunerArgumentError
from autotweak.spec import Component, Metric
from autotweak.spec._components import build_pruner
from tests.curves.conftest import N_STEPS, objective_for

optuna.logging.set_verbosity(optuna.logging.WARNING)


def run(pruner: optuna.pruners.BasePruner, n_trials: int = 30, seed: int = 0) -> optuna.Study:
    study = optuna.create_study(
        direction="maximize", pruner=pruner, sampler=optuna.samplers.RandomSampler(seed)
    )
    study.optimize(objective_for(), n_trials=n_trials)
    return study


def test_prunes_in_plain_optimize_and_records_why(toy_model: CurveModel) -> None:
    study = run(LearnedCurvePruner(toy_model, n_steps=N_STEPS, threshold=0.1))
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert pruned and len(complete) >= 5
    for trial in pruned:
        attrs = trial.user_attrs
        assert attrs[ATTR_PREFIX + "rule"] == "learned"
        assert 0 <= attrs[ATTR_PREFIX + "p_top_k"] < 0.1
        assert attrs[ATTR_PREFIX + "predicted_q10"] <= attrs[ATTR_PREFIX + "predicted_final"]
        assert attrs[ATTR_PREFIX + "step"] == trial.last_step >= 3  # min_steps: a quarter of 12
    # the best trial of the study is never one it stopped
    assert study.best_trial.state == TrialState.COMPLETE


def _outside_the_model(trial: optuna.Trial) -> float:
    """A trial with a parameter ('z') that the toy curve model does not know."""
    z = trial.suggest_float("z", 0.0, 1.0)
    for step in range(1, N_STEPS + 1):
        trial.report(z * step, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return z * N_STEPS


def test_no_model_falls_back_to_the_median_rule() -> None:
    learned = run(LearnedCurvePruner(None, n_steps=N_STEPS, min_steps=0))
    median = run(optuna.pruners.MedianPruner())
    assert [t.state for t in learned.trials] == [t.state for t in median.trials]
    rules = {t.user_attrs.get(ATTR_PREFIX + "rule") for t in learned.get_trials(states=(TrialState.PRUNED,))}
    assert rules == {"MedianPruner"}


def test_a_space_the_model_does_not_know_falls_back(toy_model: CurveModel) -> None:
    pruner = LearnedCurvePruner(toy_model, n_steps=N_STEPS)
    study = optuna.create_study(direction="maximize", pruner=pruner)

    study.optimize(_outside_the_model, n_trials=15)
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert pruned, "nothing was pruned: the test proves nothing"
    assert {t.user_attrs[ATTR_PREFIX + "rule"] for t in pruned} == {"MedianPruner"}


def test_auto_without_a_shipped_model_for_the_space_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    study = optuna.create_study(direction="maximize", pruner=LearnedCurvePruner(n_steps=N_STEPS))
    with caplog.at_level(logging.INFO, logger="autotweak"):
        study.optimize(_outside_the_model, n_trials=8)
    said = [r.getMessage() for r in caplog.records if "no curve model fits" in r.getMessage()]
    assert len(said) == 1 and "MedianPruner decides" in said[0], said


def test_first_trials_are_never_pruned_by_the_model(toy_model: CurveModel) -> None:
    """Until ``n_startup_trials`` trials have completed, the fallback decides; from then on, the model."""
    pruner = LearnedCurvePruner(toy_model, n_steps=N_STEPS, threshold=0.1, n_startup_trials=6)
    curve = [0.5 + 0.04 * step for step in range(1, N_STEPS + 1)]
    rules = {}
    for n_complete in (5, 6):
        study = _with_completed(pruner, [[v + 0.05 * (i - 2.5) for v in curve] for i in range(n_complete)])
        trial = study.ask(DISTS)
        for step, value in enumerate(curve[:5], start=1):
            trial.report(value - 0.01, step)
        rules[n_complete] = pruner.decide(study, study._storage.get_trial(trial._trial_id)).rule
    assert rules == {5: "MedianPruner", 6: "learned"}


def test_decision_depends_only_on_storage(toy_model: CurveModel) -> None:
    study = run(LearnedCurvePruner(toy_model, n_steps=N_STEPS), n_trials=20)
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert pruned, "nothing was pruned: the test proves nothing"
    fresh = LearnedCurvePruner(toy_model, n_steps=N_STEPS)
    for trial in pruned:
        again = [fresh.decide(study, trial) for _ in range(2)]
        assert again[0] == again[1] == LearnedCurvePruner(toy_model, n_steps=N_STEPS).decide(study, trial)


class _CompletesOnRead(optuna.storages.InMemoryStorage):
    """A storage in which trial ``late`` completes right after the first read of all trials."""

    late: int | None = None

    def get_all_trials(self, *args: Any, **kwargs: Any) -> list[FrozenTrial]:
        trials = super().get_all_trials(*args, **kwargs)
        if self.late is not None:
            late, self.late = self.late, None
            self.set_trial_state_values(late, TrialState.COMPLETE, [0.9])
        return trials


def test_rule_and_fallback_decide_on_one_read(toy_model: CurveModel) -> None:
    # Four complete trials: too few for the model (five needed), so the Median rule
    # decides, and it needs five too: keep. A fifth completing between two reads must not
    # let the fallback see five.
    storage = _CompletesOnRead()
    pruner = LearnedCurvePruner(toy_model, n_steps=N_STEPS, fallback=optuna.pruners.MedianPruner())
    study = optuna.create_study(storage=storage, direction="maximize", pruner=pruner)
    curve = [0.5 + 0.03 * step for step in range(1, N_STEPS + 1)]
    for _ in range(4):
        study.add_trial(
            optuna.trial.create_trial(value=curve[-1], intermediate_values=dict(enumerate(curve, start=1)))
        )
    late, low = study.ask(), study.ask()
    for step, value in enumerate(curve, start=1):
        late.report(value, step)
    for step in range(1, 7):
        low.report(0.1, step)
    frozen = study._storage.get_trial(low._trial_id)
    storage.late = late._trial_id
    decision = pruner.decide(study, frozen)
    assert storage.late is None, "the storage was not read: the test proves nothing"
    assert (decision.prune, decision.rule, decision.n_complete) == (False, "MedianPruner", 4)
    # after the fifth completed, the Median rule prunes: reading twice would have pruned
    assert optuna.pruners.MedianPruner().prune(study, frozen)


def test_registry_builds_it_with_the_metric_steps(toy_model_file: Path) -> None:
    pruner = build_pruner(
        Component("learned", {"model": str(toy_model_file), "top_k": 3}), Metric("acc", "maximize", steps=40)
    )
    assert isinstance(pruner, LearnedCurvePruner)
    assert pruner.meta["n_steps"] == 40 and pruner.meta["top_k"] == 3


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"top_k": 0}, "top_k"),
        ({"threshold": 1.5}, "threshold"),
        ({"n_steps": 0}, "n_steps"),
        ({"top_k": 5, "n_startup_trials": 2}, "n_startup_trials"),
        ({"top_k": True}, "top_k"),
        ({"threshold": "0.1"}, "threshold"),
        ({"min_steps": 200, "n_steps": 100}, "min_steps"),
        ({"model": 42}, "model"),
        ({"fallback": "median"}, "fallback"),
    ],
)
def test_bad_arguments_name_the_field(args: dict[str, object], field: str) -> None:
    args = {"model": None, **args}
    with pytest.raises(PrunerArgumentError, match=f"'{field}'"):
        LearnedCurvePruner(**args)  # type: ignore[arg-type]


def test_numpy_integers_are_integers() -> None:
    import numpy as np

    pruner = LearnedCurvePruner(None, n_steps=np.int64(20), min_steps=np.int32(3), top_k=np.int64(2))
    assert (pruner.n_steps, pruner.min_steps, pruner.top_k) == (20, 3, 2)
    assert all(type(v) is int for v in (pruner.n_steps, pruner.min_steps, pruner.top_k))


def test_a_report_at_step_zero_is_left_to_the_fallback(toy_model: CurveModel) -> None:
    """Steps 0..n-1 with ``min_steps=0``: the first decision, at step 0, has no curve to read."""
    pruner = LearnedCurvePruner(toy_model, n_steps=N_STEPS - 1, min_steps=0, threshold=0.5)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    dists = {k: optuna.distributions.FloatDistribution(0.0, 1.0) for k in ("x", "y")}
    for i in range(6):
        curve = [0.85 + 0.005 * step + 0.001 * i for step in range(N_STEPS)]
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": 0.45 + 0.01 * i, "y": 0.5},
                distributions=dists,
                value=curve[-1],
                intermediate_values=dict(enumerate(curve)),
            )
        )
    trial = study.ask(dists)
    trial.report(0.2, 0)
    decision = pruner.decide(study, study._storage.get_trial(trial._trial_id))
    assert (decision.rule, decision.step) == ("MedianPruner", 0)


def test_a_model_that_does_not_fit_the_trials_is_said_once(
    toy_model: CurveModel, caplog: pytest.LogCaptureFixture
) -> None:
    pruner = LearnedCurvePruner(toy_model, n_steps=N_STEPS)
    study = optuna.create_study(direction="maximize", pruner=pruner)

    with caplog.at_level("WARNING", logger="autotweak"):
        study.optimize(_outside_the_model, n_trials=8)
    said = [r.getMessage() for r in caplog.records if "does not fit" in r.getMessage()]
    assert (
        len(said) == 1
        and "it has no x, y and has z, which the model does not read (the model reads x, y)" in said[0]
    )
    assert "MedianPruner decides" in said[0]


def test_a_value_outside_the_models_range_is_named(
    toy_model: CurveModel, caplog: pytest.LogCaptureFixture
) -> None:
    pruner = LearnedCurvePruner(toy_model, n_steps=N_STEPS)
    study = optuna.create_study(direction="maximize", pruner=pruner)

    def wider(trial: optuna.Trial) -> float:
        x, y = (
            trial.suggest_float("x", 1.5, 2.0),
            trial.suggest_float("y", 0.0, 1.0),
        )  # x past the model's 1.0
        for step in range(1, N_STEPS + 1):
            trial.report(y * step, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return x + y

    with caplog.at_level("WARNING", logger="autotweak"):
        study.optimize(wider, n_trials=8)
    said = [r.getMessage() for r in caplog.records if "does not fit" in r.getMessage()]
    assert len(said) == 1 and "(the model's range: in [0.0, 1.0]; the study's: in [1.5, 2.0])" in said[0]
    assert re.search(r"x=1\.\d{1,5} \(", said[0]), said[0]  # 6 significant digits, not 17


def test_steps_that_do_not_start_at_the_beginning_are_pointed_out(
    toy_model: CurveModel, caplog: pytest.LogCaptureFixture
) -> None:
    """Steps 1000..1011 read as 98% trained at the first report: the user is told, once."""
    pruner = LearnedCurvePruner(toy_model)
    study = optuna.create_study(direction="maximize", pruner=pruner, sampler=optuna.samplers.RandomSampler(0))
    inner = objective_for()

    def offset(trial: optuna.Trial) -> float:
        real_report = trial.report
        trial.report = lambda value, step: real_report(value, step + 1000)  # type: ignore[method-assign]
        return float(inner(trial))

    with caplog.at_level("WARNING", logger="autotweak"):
        study.optimize(offset, n_trials=10)
    said = [r.getMessage() for r in caplog.records if "training progress" in r.getMessage()]
    assert len(said) == 1 and "step 1001 of 1012" in said[0]


def test_auto_finds_a_model_on_the_meta_path(toy_model_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTWEAK_META_PATH", str(toy_model_file.parent))
    study = run(LearnedCurvePruner("auto", n_steps=N_STEPS, threshold=0.1))
    rules = {t.user_attrs.get(ATTR_PREFIX + "rule") for t in study.get_trials(states=(TrialState.PRUNED,))}
    assert "learned" in rules


@pytest.mark.parametrize("name", ["hgb", "mlp"])
def test_shipped_models_fit_their_library_spaces(name: str) -> None:
    from autotweak import load_space
    from autotweak.curves import curve_model_paths, load_curve_model

    shipped = {p.name.split(".")[0]: p for p in curve_model_paths()}
    assert name in shipped, f"no shipped {name} curve model: {sorted(shipped)}"
    model = load_curve_model(shipped[name])
    ranges = {  # the space's domains are no part of the model: it was fit on the ranges
        param: {k: v for k, v in definition.items() if k != "domain"}
        for param, definition in load_space(name).to_dict().items()
    }
    assert model.space.to_dict() == ranges
    assert shipped[name].stat().st_size < 2_000_000


def _study_with_a_poor_trial(
    pruner: LearnedCurvePruner, last_step: int, first: int = 1
) -> tuple[optuna.Study, FrozenTrial]:
    """Six complete trials near 0.9, and an open one far below them, reported up to ``last_step``.

    Every trial reports from step ``first``; the complete ones report ``N_STEPS`` steps.
    """
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for i in range(6):
        params = {"x": 0.45 + 0.01 * i, "y": 0.5}
        curve = [0.85 + 0.005 * step + 0.001 * i for step in range(1, N_STEPS + 1)]
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions={k: optuna.distributions.FloatDistribution(0.0, 1.0) for k in params},
                value=curve[-1],
                intermediate_values=dict(enumerate(curve, start=first)),
            )
        )
    poor = study.ask(
        {
            "x": optuna.distributions.FloatDistribution(0.0, 1.0),
            "y": optuna.distributions.FloatDistribution(0.0, 1.0),
        }
    )
    for step in range(first, last_step + 1):
        poor.report(0.2, step)
    return study, study._storage.get_trial(poor._trial_id)


@pytest.mark.parametrize("first", [1, 0], ids=["steps-from-1", "steps-from-0"])
@pytest.mark.parametrize("n_steps", [N_STEPS, None], ids=["given", "from-complete-trials"])
@pytest.mark.parametrize("with_model", [True, False], ids=["learned", "fallback"])
def test_a_trial_that_trained_in_full_is_never_pruned(
    toy_model: CurveModel, n_steps: int | None, with_model: bool, first: int
) -> None:
    """Counted from 0 (``step=epoch``), a training of ``N_STEPS`` reports ends at step ``N_STEPS - 1``."""
    end = N_STEPS - 1 + first
    pruner = LearnedCurvePruner(toy_model if with_model else None, n_steps=n_steps, threshold=0.5)
    study, before_end = _study_with_a_poor_trial(pruner, end - 1, first)
    assert pruner.decide(study, before_end).prune  # one step short of the end, it is stopped
    study, at_end = _study_with_a_poor_trial(pruner, end, first)
    decision = pruner.decide(study, at_end)
    assert (decision.prune, decision.rule, decision.step) == (False, "complete", end)
    assert decision == pruner.decide(study, at_end)  # deterministic
    assert not pruner.prune(study, at_end)
    assert not study._storage.get_trial(at_end._trial_id).user_attrs  # nothing written for a kept trial


DISTS = {k: optuna.distributions.FloatDistribution(0.0, 1.0) for k in ("x", "y")}


def _with_completed(pruner: LearnedCurvePruner, curves: list[list[float]]) -> optuna.Study:
    """A study whose completed trial ``i`` reported ``curves[i]`` (steps 1, 2, ...) and ended there."""
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for i, curve in enumerate(curves):
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": 0.4 + 0.02 * i, "y": 0.5},
                distributions=DISTS,
                value=curve[-1],
                intermediate_values=dict(enumerate(curve, start=1)),
            )
        )
    return study


def test_a_trial_already_at_the_top_k_value_is_not_pruned(toy_model: CurveModel) -> None:
    """A saturated metric: the top 5 finals are all 1.0 and the open trial is at 1.0 already."""
    pruner = LearnedCurvePruner(toy_model, n_steps=N_STEPS, threshold=0.9)
    curve = [min(1.0, 0.7 + 0.05 * step) for step in range(1, N_STEPS + 1)]
    study = _with_completed(pruner, [curve] * 6)
    trial = study.ask(DISTS)
    for step, value in enumerate([0.8, 0.9, 1.0, 1.0, 1.0, 1.0, 1.0], start=1):
        trial.report(value, step)
    frozen = study._storage.get_trial(trial._trial_id)
    decision = pruner.decide(study, frozen)
    assert (decision.prune, decision.rule, decision.top_k_value) == (False, "top-k", 1.0)
    trial.report(0.75, 8)  # fallen below the bar; every final is 1.0: the study's units have no width
    assert pruner.decide(study, study._storage.get_trial(trial._trial_id)).rule == "MedianPruner"


def test_when_the_completed_trials_ended_alike_the_fallback_decides(toy_model: CurveModel) -> None:
    """The model reads curves in units of the finals' spread; a zero spread is none it knows."""
    pruner = LearnedCurvePruner(toy_model, n_steps=N_STEPS, threshold=0.1)
    decisions = {}
    for spread in (0.0, 0.05):
        curve = [0.5 + 0.04 * step for step in range(1, N_STEPS + 1)]
        study = _with_completed(pruner, [[v + spread * (i - 2.5) for v in curve] for i in range(6)])
        trial = study.ask(DISTS)
        for step, value in enumerate(curve[:5], start=1):  # the same curve as the completed ones
            trial.report(value - 0.01, step)
        decisions[spread] = pruner.decide(study, study._storage.get_trial(trial._trial_id)).rule
    assert decisions == {0.0: "MedianPruner", 0.05: "learned"}


def test_diverged_trials_do_not_switch_the_learned_rule_off(toy_model: CurveModel) -> None:
    """A diverged trial's final value is -inf (maximize): the rule still reads the finite ones."""
    pruner = LearnedCurvePruner(toy_model, n_steps=N_STEPS, threshold=0.1)
    curve = [0.5 + 0.04 * step for step in range(1, N_STEPS + 1)]
    rules = {}
    for diverged in (0, 2):
        curves = [[v + 0.05 * (i - 2.5) for v in curve] for i in range(6)]
        curves += [[*curve[:-1], -math.inf] for _ in range(diverged)]
        study = _with_completed(pruner, curves)
        trial = study.ask(DISTS)
        for step, value in enumerate(curve[:5], start=1):
            trial.report(value - 0.01, step)
        rules[diverged] = pruner.decide(study, study._storage.get_trial(trial._trial_id)).rule
    assert rules == {0: "learned", 2: "learned"}


def _hgb_objective(*, lr_low: float, drop: str | None = None) -> Any:
    """hgb's parameters (``drop`` left out), the learning rate from ``lr_low`` up to 0.9."""

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("learning_rate", lr_low, 0.9, log=True)
        trial.suggest_int("max_leaf_nodes", 4, 256, log=True)
        trial.suggest_int("min_samples_leaf", 1, 128, log=True)
        trial.suggest_float("l2_regularization", 1e-4, 10.0, log=True)
        if drop != "max_features":
            trial.suggest_float("max_features", 0.2, 1.0)
        for step in range(1, N_STEPS + 1):
            trial.report(lr * step, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return lr * N_STEPS

    return objective


def test_auto_names_the_parameter_beyond_the_shipped_models_range_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    study = optuna.create_study(
        direction="maximize",
        pruner=LearnedCurvePruner(n_steps=N_STEPS),
        sampler=optuna.samplers.RandomSampler(0),
    )
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        study.optimize(_hgb_objective(lr_low=0.6), n_trials=8)  # every learning rate above hgb's 0.5
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(said) == 1, said
    assert "'hgb'" in said[0] and "learning_rate=" in said[0] and "[0.005, 0.5]" in said[0], said
    assert "MedianPruner decides" in said[0], said


def test_auto_names_the_parameter_a_space_dropped(caplog: pytest.LogCaptureFixture) -> None:
    study = optuna.create_study(
        direction="maximize",
        pruner=LearnedCurvePruner(n_steps=N_STEPS),
        sampler=optuna.samplers.RandomSampler(0),
    )
    with caplog.at_level(logging.INFO, logger="autotweak"):
        study.optimize(_hgb_objective(lr_low=0.01, drop="max_features"), n_trials=8)
    said = [r for r in caplog.records if "no curve model fits" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO, said
    assert "'hgb'" in said[0].getMessage() and "has no max_features" in said[0].getMessage(), said


def test_a_note_is_said_once_per_study_by_the_pruners_of_its_workers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = optuna.storages.InMemoryStorage()
    objective = _hgb_objective(lr_low=0.6)
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        for worker in range(2):  # each worker builds its own pruner on the shared study
            study = optuna.create_study(
                study_name="shared",
                storage=storage,
                load_if_exists=True,
                direction="maximize",
                pruner=LearnedCurvePruner(n_steps=N_STEPS),
                sampler=optuna.samplers.RandomSampler(worker),
            )
            study.optimize(objective, n_trials=8)
    said = [r.getMessage() for r in caplog.records if "does not fit" in r.getMessage()]
    assert len(said) == 1, said


def test_a_dry_run_of_fewer_trials_than_the_model_waits_for_says_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    study = optuna.create_study(
        direction="maximize", pruner=LearnedCurvePruner(n_steps=4), sampler=optuna.samplers.RandomSampler(0)
    )
    with caplog.at_level(logging.INFO, logger="autotweak"):
        study.optimize(_hgb_objective(lr_low=0.6), n_trials=3)  # as a spec check's trial run does
    assert not [r for r in caplog.records if r.name.startswith("autotweak.curves")], caplog.records
