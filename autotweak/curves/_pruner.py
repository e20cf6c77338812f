"""``LearnedCurvePruner``: stop a trial when it is unlikely to end in the study's top k.

At each report the pruner reads, once, what the storage holds (the trial's own intermediate
values and the final values of the study's completed trials), asks a :class:`CurveModel`
for the distribution of the trial's final score, and prunes when the probability of
ending at or above the k-th best completed value falls below ``threshold``. Nothing else
enters the decision (no randomness, no clock, no state kept between calls), so every
worker computes the same decision for the same storage state.

Where the model cannot speak, a classic rule decides (Optuna's ``MedianPruner`` by
default): no model fits the trial's parameters, fewer than ``n_startup_trials`` trials
have completed (the top k is not known yet), or the full length of training is unknown.
A trial that has reached the full length of training is never pruned, by either rule: its
result is complete, and stopping it would save nothing. That is step ``n_steps`` or past it,
or ``n_steps - 1`` for a trial whose first report is at step 0 (it counts from 0); without
``n_steps``, the largest last step of the completed trials. Inside autotweak's engine the
trial handle applies the same rule to every pruner, given ``metric.steps``. Nor is one whose value already
reaches the k-th best completed value: on a saturated metric (many trials at accuracy 1.0)
its chance of ending strictly above that value is small, yet it is no loser.

When it prunes, the pruner writes what it saw into the trial's user attributes
(``autotweak.pruner.*``); the engine copies them to the trial's MLflow run.

Example:
    >>> import optuna
    >>> pruner = LearnedCurvePruner(model=None, n_steps=20)  # no model: Median rule
    >>> study = optuna.create_study(direction="maximize", pruner=pruner)
"""

from __future__ import annotations

import math
import os
from typing import Any, cast

import numpy as np
import optuna
from numpy.typing import NDArray
from optuna.pruners import BasePruner, MedianPruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from autotweak._progress import trained_in_full
from autotweak._study_view import StudyView
from autotweak._validation import is_number
from autotweak.curves._calibration import LEVEL, Calibration, check_calibration
from autotweak.curves._decision import ATTR_PREFIX, Decision
from autotweak.curves._features import Reference
from autotweak.curves._library import load_curve_model, model_for
from autotweak.curves._model import CurveModel, FinalScore
from autotweak.curves._pruner_args import PrunerArgumentError, check, count
from autotweak.curves._pruner_notes import Notes, misfit
from autotweak.space import SearchSpace

__all__ = ["ATTR_PREFIX", "Decision", "LearnedCurvePruner", "PrunerArgumentError"]

MIN_FRACTION = 0.25
_LATE_START = 0.5  # a first report past this fraction of training reads as a step offset


class LearnedCurvePruner(Notes, BasePruner):
    """Prune a trial whose probability of ending in the study's top ``top_k`` is below ``threshold``.

    Args:
        model: A :class:`CurveModel`, a model file, ``"auto"`` (the shipped model that fits
            the trial's parameters) or ``None`` (always the fallback rule).
        top_k: How many of the best completed trials a trial must be able to join.
        threshold: Prune when the probability of joining them is below this.
        min_steps: Never prune before this step (default: a quarter of ``n_steps``).
        n_steps: The step of a full training (``metric.steps``); if ``None``, the largest
            last step of the completed trials. Steps count training from its start: a
            report at step ``s`` reads as ``s / n_steps`` of the training done; a trial
            that reports step 0 first ends its training at step ``n_steps - 1``.
        n_startup_trials: Completed trials needed before the model decides (default:
            ``top_k``); until then the fallback decides.
        fallback: The classic rule (default: ``MedianPruner()``).
    """

    records_decisions = True  # it writes ``autotweak.pruner.*`` itself, with its prediction

    def __init__(
        self,
        model: CurveModel | str | os.PathLike[str] | None = "auto",
        *,
        top_k: int = 5,
        threshold: float = 0.1,
        min_steps: int | None = None,
        n_steps: int | None = None,
        n_startup_trials: int | None = None,
        fallback: BasePruner | None = None,
    ) -> None:
        top_k = cast(int, count("top_k", top_k, 1))
        number = is_number(threshold)
        check("threshold", threshold, number and 0 <= threshold < 1, "a number in [0, 1)")
        n_steps = count("n_steps", n_steps, 1, optional=True)
        min_steps = count("min_steps", min_steps, 0, optional=True)
        if n_steps is not None and min_steps is not None:
            check(
                "min_steps", min_steps, min_steps < n_steps, f"below n_steps ({n_steps}), or it never prunes"
            )
        startup = cast(
            int, count("n_startup_trials", top_k if n_startup_trials is None else n_startup_trials, top_k)
        )
        check(
            "model",
            model,
            model is None or isinstance(model, CurveModel | str | os.PathLike),
            "a CurveModel, a curve model file, 'auto' or None",
        )
        check("fallback", fallback, fallback is None or isinstance(fallback, BasePruner), "an Optuna pruner")
        self._model_arg = model
        self._model = (
            load_curve_model(model)
            if isinstance(model, str | os.PathLike) and str(model) != "auto"
            else model
        )
        self.top_k = top_k
        self.threshold = float(threshold)
        self.min_steps = min_steps
        self.n_steps = n_steps
        self.n_startup_trials = startup
        self.fallback = fallback or MedianPruner()
        self._told: set[str] = set()  # warnings given once per pruner
        self._calibrations: dict[tuple[Any, ...], Calibration] = {}
        self._nearest: dict[frozenset[str], CurveModel | None] = {}  # parameter names -> nearest model

    @property
    def meta(self) -> dict[str, Any]:
        """What this pruner is (logged with the study, compared on resume)."""
        model = self._model_arg
        shown = model.space.name if isinstance(model, CurveModel) else (None if model is None else str(model))
        return {
            "name": "learned",
            "model": shown,
            "top_k": self.top_k,
            "threshold": self.threshold,
            "min_steps": self.min_steps,
            "n_steps": self.n_steps,
            "n_startup_trials": self.n_startup_trials,
            "fallback": type(self.fallback).__name__,
        }

    def check_space(self, space: SearchSpace) -> None:
        """Refuse a given curve model that no trial of ``space`` can fit.

        Raises:
            PrunerArgumentError: If the model's parameters are not the space's (every decision
                would go to the fallback, said only once the study runs).
        """
        model = self._model
        if not isinstance(model, CurveModel):
            return
        names = sorted(p.name for p in model.space.tunable)
        mine = sorted(p.name for p in space.tunable)
        conditional = any(p.when is not None for p in space.params)
        if names == mine or (conditional and set(names) <= set(mine)):
            return
        raise PrunerArgumentError(
            f"the curve model (space '{model.space.name}') fits trials of the parameters {names}, "
            f"got a space of {mine}; no trial would be decided by it"
        )

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        decision = self.decide(study, trial)
        if decision.prune:
            for key, value in decision.attrs().items():
                study._storage.set_trial_user_attr(trial._trial_id, key, value)
        return decision.prune

    def decide(self, study: optuna.Study, trial: FrozenTrial) -> Decision:
        """The decision for ``trial`` given the study as stored now.

        It writes nothing but, the first time the pruner notes a problem (a trial no model
        fits, late first reports, a model too pessimistic on the study), the study's mark
        that the note was said.
        """
        step = trial.last_step
        if step is None:
            return Decision(False, "warmup", -1)
        # One read of the storage: the rule and its fallback must see the same trials, or a
        # trial that completes in between makes a decision no single storage state explains.
        snapshot = StudyView(study, trials=study.get_trials(deepcopy=False))
        complete = [t for t in snapshot.get_trials(False, (TrialState.COMPLETE,)) if t.value is not None]
        n_steps = self.n_steps or max((t.last_step or 0 for t in complete), default=0) or None
        if n_steps is not None and self._trained_in_full(trial, step, n_steps):  # stopping it saves nothing
            return Decision(False, "complete", step, n_complete=len(complete))
        min_steps = self.min_steps if self.min_steps is not None else math.ceil(MIN_FRACTION * (n_steps or 0))
        if step < min_steps:
            return Decision(False, "warmup", step, n_complete=len(complete))
        model = self._model_for(trial)
        unit = None if model is None else model.unit_config(trial.params)
        # Notes are said once the model would decide (before that the fallback decides every
        # trial): a spec check's dry run of a few trials says nothing of trials that never ran,
        # and workers that start together do not all meet a note at their first report.
        ready = len(complete) >= self.n_startup_trials
        if ready:
            self._note_misfits(study, trial, model, unit, n_steps)
        decision = None
        if ready and model is not None and unit is not None and n_steps is not None:
            decision = self._learned(study, trial, model, unit, complete, step, (min_steps, n_steps))
        return decision or self._fallback(snapshot, trial, step, len(complete))

    def _note_misfits(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        model: CurveModel | None,
        unit: NDArray[np.float64] | None,
        n_steps: int | None,
    ) -> None:
        """Say, once, that no model reads ``trial``, or that its first report is late in training."""
        if model is None and self._model is not None:  # "auto": no shipped model fits
            self._no_model(study, trial)
        if model is not None and unit is None:
            self._tell(
                study,
                "fit",
                f"the curve model (space {model.space.name!r}) does not fit trial {trial.number}: "
                f"{misfit(model, trial)}; {type(self.fallback).__name__} decides for such trials.",
            )
        first = min(trial.intermediate_values)
        if n_steps is not None and first > max(1, _LATE_START * n_steps):
            self._tell(
                study,
                "offset",
                f"steps are read as training progress (step / n_steps), but trial {trial.number}'s "
                f"first report is at step {first} of {n_steps}: report from the start of training "
                "(steps 1, 2, ...), or decisions read every trial as nearly trained.",
            )

    def _learned(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        model: CurveModel,
        unit: NDArray[np.float64],
        complete: list[FrozenTrial],
        step: int,
        span: tuple[int, int],
    ) -> Decision | None:
        """The model's decision at ``step`` (``span``: min_steps, n_steps); ``None``: the fallback's.

        The fallback decides where the study gives the model nothing to read: a non-finite
        value, no report past step 0, fewer than two finite completed values or all of them
        alike, no completed trial with a value at this step.
        """
        n_steps = span[1]
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        value = trial.intermediate_values[step]
        steps = sorted(
            s for s, v in trial.intermediate_values.items() if math.isfinite(v) and 0 < s <= n_steps
        )
        if not math.isfinite(value) or not steps:  # nothing trained to extrapolate from
            return None
        finals = np.sort(sign * np.array([t.value for t in complete], dtype=np.float64))[::-1]
        bar = float(finals[self.top_k - 1])
        if sign * value >= bar:  # already as good as the k-th best final (a saturated metric ties there)
            return Decision(False, "top-k", step, top_k_value=sign * bar, n_complete=len(complete))
        finite = finals[np.isfinite(finals)]  # a diverged trial's inf would make every quantile NaN
        # Completed trials that ended alike leave the study's units without width: the model,
        # which reads every curve in them, was never trained on such a study.
        if len(finite) < 2 or not np.quantile(finite, 0.9) > np.quantile(finite, 0.1):
            return None
        ref = Reference.of(finite)
        peers = sign * np.array([_value_at(t, step) for t in complete], dtype=np.float64)
        peers = peers[np.isfinite(peers)]
        if not len(peers):
            return None
        values = sign * np.array([trial.intermediate_values[s] for s in steps], dtype=np.float64)
        fractions = np.array(steps, dtype=np.float64) / n_steps
        final = model.final_score(values, fractions, unit, ref, peers)
        p, misses = final.p_above(bar), None
        if p < self.threshold:  # about to prune: does the model hold on this study?
            p, misses = self._checked(study, model, final, complete, step, span, sign, ref, bar)
        q10, q50, q90 = (sign * final.quantile((0.1, 0.5, 0.9))).tolist()
        predicted = (q10, q50, q90) if sign > 0 else (q90, q50, q10)
        return Decision(p < self.threshold, "learned", step, p, predicted, sign * bar, len(complete), misses)

    def _checked(
        self,
        study: optuna.Study,
        model: CurveModel,
        final: FinalScore,
        complete: list[FrozenTrial],
        step: int,
        span: tuple[int, int],
        sign: float,
        ref: Reference,
        bar: float,
    ) -> tuple[float, tuple[int, int] | None]:
        """The probability of the top k, corrected where the study proves the model too pessimistic.

        Returns it with the misses found (``None`` where the model holds on the study).
        """
        min_steps, n_steps = span
        p = final.p_above(bar)
        checks = max(1, n_steps - min_steps)  # the steps it decides at, each a check of the model
        calibration = self._calibration(model, complete, step, n_steps, sign, ref, checks)
        if not calibration.off:
            return p, None
        self._tell(
            study,
            "calibration",
            f"the curve model is too pessimistic on study {study.study_name!r}: seen at step "
            f"{step}, {calibration.misses} of its {calibration.checked} completed trials ended "
            f"above the model's {1 - LEVEL:.0%} bound (about {LEVEL:.0%} expected); its "
            "probabilities are corrected by the study's completed trials while that holds.",
        )
        needed = (bar - final.centre) / ref.spread
        return calibration.corrected(p, needed), (calibration.misses, calibration.checked)

    def _trained_in_full(self, trial: FrozenTrial, step: int, n_steps: int) -> bool:
        """Whether ``step`` ends a full training (of the given ``n_steps``, else the completed trials')."""
        if self.n_steps is None:  # where completed trials stopped, whichever way they count
            return step >= n_steps
        return trained_in_full(min(trial.intermediate_values), step, n_steps)

    def _calibration(
        self,
        model: CurveModel,
        complete: list[FrozenTrial],
        step: int,
        n_steps: int,
        sign: float,
        ref: Reference,
        checks: int,
    ) -> Calibration:
        """:func:`check_calibration`, kept per set of completed trials (a finished trial does not change)."""
        key = (id(model), step, n_steps, sign, checks, tuple(t._trial_id for t in complete))
        if key not in self._calibrations:
            if len(self._calibrations) >= 256:  # the oldest goes (another thread may have taken it)
                self._calibrations.pop(next(iter(self._calibrations), key), None)
            self._calibrations[key] = check_calibration(model, complete, step, n_steps, sign, ref, checks)
        return self._calibrations[key]

    def _model_for(self, trial: FrozenTrial) -> CurveModel | None:
        if isinstance(self._model, CurveModel) or self._model is None:
            return self._model
        return model_for(trial.params)

    def _fallback(self, study: StudyView, trial: FrozenTrial, step: int, n_complete: int) -> Decision:
        prune = bool(self.fallback.prune(cast(optuna.Study, study), trial))
        return Decision(prune, type(self.fallback).__name__, step, n_complete=n_complete)


def _value_at(trial: FrozenTrial, step: int) -> float:
    """``trial``'s value at ``step``, or at its last step before it; NaN if none."""
    if step in trial.intermediate_values:
        return float(trial.intermediate_values[step])
    earlier = [s for s in trial.intermediate_values if s <= step]
    return float(trial.intermediate_values[max(earlier)]) if earlier else math.nan
