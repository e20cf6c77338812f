"""Does the curve model hold on this study? A check on the study's own completed trials.

The shipped curve models learned how curves bend on the tasks of the benchmark corpus. A
task of another kind (a regression loss that keeps falling, a schedule slower than any
seen) can bend otherwise, and a model that expects its curves to flatten will call slow
starters hopeless. The completed trials of the study say whether it does: had the model
seen each of them at the current step, how often would their actual final score have
ended above the model's upper bound (its 90% quantile)? A calibrated model is wrong that
way about one time in ten; far more often, and the model is too pessimistic here.

The check is one-sided (an optimistic model only prunes less) and made again at each
decision, at every step and as completed trials accumulate, so one test at level ``ALPHA``
each time would trip on some calibrated study far more often than ``ALPHA`` (measured on
the replay benchmark, leave-one-task-out models: 9 of 50 studies). The evidence is therefore
an e-value, the likelihood ratio of the misses under a miss rate drawn uniformly from
[0, 1] against the calibrated ``LEVEL``: for one step, as trials complete, a calibrated
model's e-value ever reaching ``1 / ALPHA`` has probability at most ``ALPHA`` (Ville's
inequality, misses independent across trials), and the bar is raised to ``checks / ALPHA``
for the steps at which the pruner decides (a union bound), so the chance that a calibrated
study trips the check anywhere is at most ``ALPHA``. That costs power: 4 misses of 5
completed trials no longer trip it (8 of 8, or 10 of 20, do).

While the model is judged off, its probabilities are corrected by the same evidence, as
split conformal prediction does: the completed trials' finals ended some distance above
or below the model's central prediction for them (in the study's spreads); a trial
reaches a bar as often as those distances would carry it there, counted together with the
model's own probability as ``PRIOR_TRIALS`` pseudo-trials. A trial far below the bar stays
hopeless; one the model holds just short of it is no longer stopped. It reads nothing but
the completed trials, so it is the same on every worker.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from optuna.trial import FrozenTrial

from autotweak.curves._features import Reference
from autotweak.curves._model import CurveModel

__all__ = ["ALPHA", "LEVEL", "PRIOR_TRIALS", "Calibration", "check_calibration", "log_evidence"]

LEVEL = 0.1  # a miss: the final ended above the model's 1 - LEVEL quantile
ALPHA = 0.01  # the chance that a calibrated model is set aside at any decision of a study, at most
MIN_TRIALS = 5  # completed trials with a curve before the check speaks
PRIOR_TRIALS = 5  # the weight of the model's own probability in the corrected one, in trials


@dataclass(frozen=True)
class Calibration:
    """How the model did on the study's completed trials at one step.

    Attributes:
        misses: Completed trials whose final ended above the model's upper bound.
        checked: Completed trials the model could be asked about.
        log_evidence: The log of the e-value of the misses against a calibrated model
            (:func:`log_evidence`).
        checks: The steps at which the check is made in a study: the bar of the e-value is
            ``checks / ALPHA``.
        residuals: Each checked trial's final minus the model's central prediction for it, in
            the study's spreads (oriented: positive where the final ended better), sorted.
    """

    misses: int
    checked: int
    log_evidence: float
    checks: int = 1
    residuals: tuple[float, ...] = ()

    @property
    def off(self) -> bool:
        """Whether the model is too pessimistic on this study to be taken at its word."""
        return self.checked >= MIN_TRIALS and self.log_evidence >= math.log(max(self.checks, 1) / ALPHA)

    def corrected(self, p: float, needed: float) -> float:
        """The probability of reaching a bar, corrected by the checked trials.

        Args:
            p: The model's probability of ending at or above the bar.
            needed: How far above the model's central prediction the bar is, in the
                study's spreads.
        """
        reaching = len(self.residuals) - bisect.bisect_left(self.residuals, needed)
        return (reaching + PRIOR_TRIALS * p) / (len(self.residuals) + PRIOR_TRIALS)


def check_calibration(
    model: CurveModel,
    complete: Sequence[FrozenTrial],
    step: int,
    n_steps: int,
    sign: float,
    ref: Reference,
    checks: int = 1,
) -> Calibration:
    """The model's misses on ``complete`` (finished trials with a final value) seen at ``step``.

    Each trial is seen as it stood at ``step`` (its reports up to there), among the other
    completed trials at that step, in the study's units ``ref``. ``checks`` is how many steps
    of a study the check may be made at (the pruner's deciding steps).
    """
    at_step = [_oriented_curve(t, step, n_steps, sign) for t in complete]
    peers_all = np.array(
        [curve[0][-1] if curve is not None else math.nan for curve in at_step], dtype=np.float64
    )
    u: list[float] = []
    residuals: list[float] = []
    for i, (trial, curve) in enumerate(zip(complete, at_step, strict=True)):
        unit = model.unit_config(trial.params)
        if curve is None or unit is None or trial.value is None or not math.isfinite(trial.value):
            continue
        peers = np.delete(peers_all, i)
        peers = peers[np.isfinite(peers)]
        if not len(peers):
            continue
        values, fractions = curve
        predicted = model.final_score(values, fractions, unit, ref, peers)
        u.append(predicted.p_above(sign * trial.value))
        residuals.append((sign * trial.value - predicted.centre) / ref.spread)
    misses = sum(x < LEVEL for x in u)
    return Calibration(misses, len(u), log_evidence(misses, len(u)), checks, tuple(sorted(residuals)))


def _oriented_curve(
    trial: FrozenTrial, step: int, n_steps: int, sign: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """The trial's finite reports at steps in ``(0, step]``, oriented, with their training fractions."""
    steps = sorted(
        s for s, v in trial.intermediate_values.items() if 0 < s <= min(step, n_steps) and math.isfinite(v)
    )
    if not steps:
        return None
    values = sign * np.array([trial.intermediate_values[s] for s in steps], dtype=np.float64)
    return values, np.array(steps, dtype=np.float64) / n_steps


def log_evidence(misses: int, checked: int, level: float = LEVEL) -> float:
    """The log e-value of ``misses`` of ``checked`` against a miss rate of ``level``.

    The likelihood of the misses under a miss rate drawn uniformly from [0, 1] (a Beta(1, 1)
    mixture), divided by their likelihood at ``level``. For a calibrated model its expected
    value is 1 at any ``checked``, and as trials are added it is a test martingale: it
    reaches ``1 / a`` with probability at most ``a``, however long the study runs.

    Example:
        >>> round(math.exp(log_evidence(8, 8)))  # every one of 8 trials missed
        11111111
    """
    if not 0 <= misses <= checked:
        raise ValueError(f"misses must be in [0, checked], got misses={misses}, checked={checked}.")
    mixture = math.lgamma(misses + 1) + math.lgamma(checked - misses + 1) - math.lgamma(checked + 2)
    return mixture - misses * math.log(level) - (checked - misses) * math.log1p(-level)
