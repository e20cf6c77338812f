"""The learned pruner checks its curve model on the study's own completed trials."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest

from autotweak.curves import CurveModel, LearnedCurvePruner
from autotweak.curves._calibration import ALPHA, LEVEL, PRIOR_TRIALS, Calibration, log_evidence
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


def _judged(misses: int, checked: int, checks: int = 1) -> Calibration:
    return Calibration(misses, checked, log_evidence(misses, checked), checks)


def test_the_evidence_is_a_mixture_likelihood_ratio_and_when_the_model_is_judged_off() -> None:
    assert log_evidence(0, 0) == 0.0
    assert math.exp(log_evidence(8, 8)) == pytest.approx(1 / (9 * LEVEL**8))
    assert math.exp(log_evidence(2, 10)) == pytest.approx(
        math.factorial(2) * math.factorial(8) / math.factorial(11) / (LEVEL**2 * (1 - LEVEL) ** 8)
    )
    expected = sum(
        math.comb(12, k) * LEVEL**k * (1 - LEVEL) ** (12 - k) * math.exp(log_evidence(k, 12))
        for k in range(13)
    )
    assert expected == pytest.approx(1.0), "an e-value: its mean is 1 for a calibrated model"
    with pytest.raises(ValueError, match="misses must be in"):
        log_evidence(3, 2)
    assert not _judged(4, 4).off, "too few trials to judge"
    assert _judged(5, 5, checks=15).off and _judged(10, 20, checks=22).off and _judged(8, 8, checks=22).off
    assert not _judged(2, 10).off


def test_a_chance_dip_of_a_calibrated_model_at_one_of_many_checks_does_not_trip_it() -> None:
    """4 misses of 8 at one step: a binomial test says p = 0.005, below ALPHA, which happens by chance
    at some step of many a calibrated study; over the 15 steps the pruner decides at, it is no evidence."""
    binomial = sum(math.comb(8, k) * LEVEL**k * (1 - LEVEL) ** (8 - k) for k in range(4, 9))
    assert binomial < ALPHA
    assert not _judged(4, 8, checks=15).off
    assert not _judged(6, 14, checks=15).off


def test_a_calibrated_model_trips_the_check_in_at_most_alpha_of_studies_over_all_its_checks() -> None:
    """Simulated studies of a calibrated model: misses Bernoulli(LEVEL), 5 to 40 completed trials, checked
    at each of 15 steps (independent across steps, the worst case for the union over steps)."""
    rng = np.random.default_rng(0)
    studies, steps, trials = 1000, 15, 40
    found = (rng.random((studies, steps, trials)) < LEVEL).cumsum(axis=2)
    checked = np.arange(1, trials + 1)
    off = np.array(
        [
            [_judged(k, n, steps).off if k <= n else False for n in range(trials + 1)]
            for k in range(trials + 1)
        ]
    )
    tripped = off[found, checked].any(axis=(1, 2))
    assert tripped.mean() <= ALPHA
    tail = np.array(
        [
            [
                sum(math.comb(n, i) * LEVEL**i * (1 - LEVEL) ** (n - i) for i in range(k, n + 1))
                for n in range(trials + 1)
            ]
            for k in range(trials + 1)
        ]
    )
    per_check = (tail[found, checked] < ALPHA) & (checked >= 5)
    assert per_check.any(axis=(1, 2)).mean() > 0.2, "a test at ALPHA at each check trips far more often"
    too_pessimistic = (rng.random((studies, 1, trials)) < 0.5).cumsum(axis=2)
    assert off[too_pessimistic[:, :, :20], checked[:20]].any(axis=(1, 2)).mean() > 0.5, (
        "half missed: found in 20 trials"
    )


def test_the_correction_counts_the_residuals_that_reach_the_bar_and_the_model_as_pseudo_trials() -> None:
    off = Calibration(5, 5, log_evidence(5, 5), 1, (0.2, 0.4, 0.6, 0.8, 1.0))
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
