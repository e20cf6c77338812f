"""The learned pruner checks its curve model on the study's own completed trials."""

from __future__ import annotations

import math

import optuna
import pytest

from autotweak.curves import CurveModel, LearnedCurvePruner
from autotweak.curves._calibration import ALPHA, PRIOR_TRIALS, Calibration, _tail
from tests.curves.conftest import N_STEPS, toy_curve
from tests.curves.test_pruner import DISTS, _with_completed


def _late_jumps(n: int) -> list[list[float]]:
    """Curves flat at about 0.4 that jump to about 0.9 at their last step: no curve the toy model knows."""
    return [[0.4 + 0.005 * i] * (N_STEPS - 1) + [0.85 + 0.02 * i] for i in range(n)]


def _open_trial(study: optuna.Study, values: list[float]) -> optuna.trial.FrozenTrial:
    study.enqueue_trial({"x": 0.5, "y": 0.5})  # the config the model reads too: fixed
    trial = study.ask(DISTS)
    for step, value in enumerate(values, start=1):
        trial.report(value, step)
    return study._storage.get_trial(trial._trial_id)


def test_a_model_its_study_proves_too_pessimistic_does_not_prune_a_slow_starter(
    toy_model: CurveModel, caplog: pytest.LogCaptureFixture
) -> None:
    pruner = LearnedCurvePruner(toy_model, n_steps=N_STEPS, threshold=0.1)
    study = _with_completed(pruner, _late_jumps(8))
    decision = pruner.decide(study, _open_trial(study, [0.425] * 4))  # as flat as the trials that jumped
    assert decision.rule == "learned" and not decision.prune
    assert decision.misses == (8, 8), "every completed trial ended above the model's 90% bound"
    assert decision.p_top_k is not None and decision.p_top_k >= 0.1
    assert "too pessimistic" in caplog.text and "8 of its 8" in caplog.text


def test_where_the_model_holds_nothing_is_corrected(toy_model: CurveModel) -> None:
    """Curves of the kind the model learned (a task it never saw): it decides alone."""
    pruner = LearnedCurvePruner(toy_model, n_steps=N_STEPS, threshold=0.1)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for i in range(8):
        params = {"x": 0.1 + 0.1 * i, "y": 0.5}
        curve = toy_curve(params, task=40)
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=DISTS,
                value=curve[-1],
                intermediate_values=dict(enumerate(curve, start=1)),
            )
        )
    decision = pruner.decide(study, _open_trial(study, [0.2] * 5))  # far below every completed curve
    assert (decision.rule, decision.prune, decision.misses) == ("learned", True, None)
    assert "autotweak.pruner.model_misses" not in decision.attrs()


def test_the_binomial_tail_and_when_the_model_is_judged_off() -> None:
    assert _tail(0, 10, 0.1) == 1.0
    assert _tail(10, 10, 0.1) == pytest.approx(1e-10)
    assert _tail(1, 1, 0.1) == pytest.approx(0.1)
    assert _tail(3, 10, 0.1) == pytest.approx(
        1 - sum(math.comb(10, i) * 0.1**i * 0.9 ** (10 - i) for i in range(3))
    )
    assert not Calibration(4, 4, _tail(4, 4, 0.1)).off, "too few trials to judge"
    assert Calibration(4, 5, _tail(4, 5, 0.1)).off and _tail(4, 5, 0.1) < ALPHA
    assert not Calibration(2, 10, _tail(2, 10, 0.1)).off


def test_the_correction_counts_the_residuals_that_reach_the_bar_and_the_model_as_pseudo_trials() -> None:
    off = Calibration(5, 5, _tail(5, 5, 0.1), (0.2, 0.4, 0.6, 0.8, 1.0))
    assert off.corrected(0.0, 5.0) == 0.0, "a bar no residual reaches: as hopeless as the model says"
    assert off.corrected(0.01, 0.5) == pytest.approx((3 + PRIOR_TRIALS * 0.01) / (5 + PRIOR_TRIALS))
    assert off.corrected(0.01, 0.6) == off.corrected(0.01, 0.5), "a residual at the bar reaches it"
    assert off.corrected(0.02, -1.0) == pytest.approx((5 + PRIOR_TRIALS * 0.02) / (5 + PRIOR_TRIALS))
    needed = [-1.0, 0.3, 0.7, 0.9, 2.0]
    corrected = [off.corrected(0.05, n) for n in needed]
    assert corrected == sorted(corrected, reverse=True), "a higher bar is never more likely"


def test_a_hopeless_trial_is_pruned_even_where_the_model_is_off(toy_model: CurveModel) -> None:
    pruner = LearnedCurvePruner(toy_model, n_steps=N_STEPS, threshold=0.1)
    study = _with_completed(pruner, _late_jumps(8))
    decision = pruner.decide(study, _open_trial(study, [0.05] * 4))  # no jump of theirs would carry it there
    assert decision.misses == (8, 8) and decision.prune
