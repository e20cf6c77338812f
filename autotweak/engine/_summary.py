"""What a study cost and what it found: compute in full trainings, and the summary of its trials.

Compute counts a pruned trial as the share of a full training it ran (``metric.steps``
reports make one); a retry's earlier attempts say whether its training counts steps from 0.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autotweak.engine._study import ATTR, config_of, state_of
from autotweak.spec import Experiment
from autotweak.tracking import StudySummary

__all__ = [
    "metric_of",
    "attempts_of",
    "best_config",
    "frozen_compute",
    "search_trials",
    "steps_of",
    "study_compute",
    "summarize",
    "trial_compute",
    "training_first",
]

_log = logging.getLogger(__name__)


def steps_of(study: optuna.Study) -> int | None:
    """Report steps in one full training, as declared by the study's spec."""
    steps = study.user_attrs.get(ATTR.SPEC, {}).get("metric", {}).get("steps")
    return int(steps) if steps else None


def metric_of(study: optuna.Study) -> tuple[str, str]:
    """The study's metric and direction (``maximize`` or ``minimize``), as its spec names them.

    A study autotweak did not create has neither: its values are ``value``, in Optuna's direction.
    """
    metric = dict(study.user_attrs.get(ATTR.SPEC, {}).get("metric") or {})
    return str(metric.get("name", "value")), str(metric.get("direction", study.direction.name.lower()))


def frozen_compute(
    trial: FrozenTrial, steps: int | None, attempts: Callable[[int], FrozenTrial | None] | None = None
) -> float:
    """Full-training equivalents a trial spent, read from its state and reported steps.

    ``attempts`` looks up the study's trials by number (:func:`attempts_of`): with it, a retry
    that resumed from a checkpoint is charged as its training counts its steps, from 0 or 1
    (:func:`training_first`); without it, from 1.
    """
    reported = trial.intermediate_values
    state = "complete" if trial.state == TrialState.COMPLETE else "partial"
    return trial_compute(
        state,
        (min(reported), max(reported)) if reported else None,
        steps,
        retry=ATTR.RETRY_OF in trial.user_attrs,
        training_first=None if attempts is None else lambda: training_first(trial, attempts),
    )


def attempts_of(trials: list[FrozenTrial]) -> Callable[[int], FrozenTrial | None]:
    """Look ``trials`` up by number; indexed at the first look-up, which most summaries never make."""
    index: dict[int, FrozenTrial] = {}

    def attempt(number: int) -> FrozenTrial | None:
        if not index:
            index.update((t.number, t) for t in trials)
        return index.get(number)

    return attempt


def training_first(trial: FrozenTrial, attempts: Callable[[int], FrozenTrial | None]) -> int | None:
    """The step at which ``trial``'s training first reported, over its attempts.

    A retry that resumed from a checkpoint reports from where the attempt before it
    stopped; the attempt that started the training says whether the trial counts its steps
    from 0. A first report at step 1 is a training's start only in the first attempt: a
    retry's may resume one counted from 0 (stopped after step 0), so the chain is read on.
    ``attempts`` looks an earlier attempt up by its number (``None`` if it cannot).
    ``None`` if no attempt reported.
    """
    first: int | None = None
    current: FrozenTrial | None = trial
    seen: set[int] = set()
    while current is not None and current.number not in seen:
        seen.add(current.number)
        if current.intermediate_values:
            reported = min(current.intermediate_values)
            first = reported if first is None else min(first, reported)
            if first == 0:
                break
        retry_of = current.user_attrs.get(ATTR.RETRY_OF)
        current = None if retry_of is None else attempts(int(retry_of))
    return first


def study_compute(trials: list[FrozenTrial], steps: int | None) -> float:
    """Full-training equivalents the search spent in ``trials`` (running ones count what they read).

    Trials that ``report --ablate`` ran are counted apart (see :func:`search_trials`).
    """
    attempts = attempts_of(trials)
    return sum(
        frozen_compute(t, steps, attempts) for t in search_trials(trials) if t.state != TrialState.WAITING
    )


def search_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The study's search: its trials less those ``report --ablate`` ran, which spend no budget."""
    return [t for t in trials if not t.user_attrs.get(ATTR.ABLATION)]


def trial_compute(
    state: str,
    reported: tuple[int, int] | None,
    steps: int | None,
    *,
    retry: bool = False,
    training_first: Callable[[], int | None] | None = None,
) -> float:
    """Full-training equivalents: 1 for a finished trial, the share of steps read otherwise.

    Steps count from 1 (step ``s`` means ``s/steps`` of a training done); a training that
    first reported at step 0 counts from 0, and its step ``s`` means ``s + 1`` steps ran.

    Args:
        state: ``"complete"``, or anything else for a trial that stopped early.
        reported: The first and last steps the trial reported, or ``None``.
        steps: Steps in one full training (``metric.steps``), if known.
        retry: Whether the trial is another attempt of one that did not finish. A retry
            whose first report comes after its training's first step resumed from a
            checkpoint: it is charged only the steps it ran, the earlier attempt having been
            charged the rest.
        training_first: For such a retry, finds the step at which its training first
            reported, over its attempts; called only where the answer changes the charge
            (a retry that finished its training). Without it the training counts from 1.
    """
    if reported is not None and _from_zero(state, reported, steps, retry, training_first):
        reported = (reported[0] + 1, reported[1] + 1)
    start = reported[0] - 1 if retry and reported is not None and reported[0] > 1 else 0
    if state == "complete" and not start:
        return 1.0
    if reported is None:
        return 0.0
    if steps is None:
        return 1.0
    end = steps if state == "complete" else min(reported[1], steps)
    return max(end - start, 0) / steps


def _from_zero(
    state: str,
    reported: tuple[int, int],
    steps: int | None,
    retry: bool,
    training_first: Callable[[], int | None] | None,
) -> bool:
    """Whether the trial's training counts its steps from 0, looked up only where it changes the charge.

    A resumed retry is charged ``last - first + 1`` steps either way, unless it ended its
    training: then the steps left to the end are one fewer when counted from 0.
    """
    first, last = reported
    if first == 0 or not retry:  # a retry's report at step 1 may resume a training counted from 0
        return first == 0
    ended = steps is not None and (state == "complete" or last >= steps)
    return ended and training_first is not None and training_first() == 0


def best_config(study: optuna.Study, summary: StudySummary) -> dict[str, Any]:
    """The best trial's full config, from the spec the study keeps (its params alone without one)."""
    if summary.best_number is None:
        return {}
    spec = study.user_attrs.get(ATTR.SPEC)
    if not spec:
        return dict(summary.best_params)
    experiment = Experiment.from_dict(spec, source=f"<study {study.study_name}>", check_objective=False)
    return config_of(experiment, summary.best_params)


def summarize(study: optuna.Study, *, interrupted: bool = False) -> StudySummary:
    """Counts by state, the best trial, the baseline's value and the compute spent."""
    trials = study.get_trials(deepcopy=False)
    search = search_trials(trials)  # an ablation trial is a measurement for the report, not the search's
    counts = Counter(state_of(t) for t in search)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    found = search_trials(complete)
    best: FrozenTrial | None = None
    if found:
        pick = max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min
        best = pick(found, key=lambda t: float(t.value))  # type: ignore[arg-type]
    base = _base_trial(study, complete)
    compute = study_compute(trials, steps_of(study))
    return StudySummary(
        study_name=study.study_name,
        counts={state: counts.get(state, 0) for state in _COUNTED},
        best_number=None if best is None else best.number,
        best_value=None if best is None else best.value,
        best_params={} if best is None else dict(best.params),
        base_value=None if base is None else base.value,
        compute=compute if math.isfinite(compute) else 0.0,
        interrupted=interrupted,
    )


_COUNTED = ("complete", "pruned", "failed", "preempted", "interrupted", "running", "waiting")


def _base_trial(study: optuna.Study, complete: list[FrozenTrial]) -> FrozenTrial | None:
    """The trial that measured the base config: the baseline, else one with the same values.

    ``report --ablate`` measures the base config of a study that had no baseline trial.
    """
    marked = next((t for t in complete if t.user_attrs.get(ATTR.BASELINE)), None)
    spec = study.user_attrs.get(ATTR.SPEC)
    if marked is not None or not complete or not spec:
        return marked
    experiment = Experiment.from_dict(spec, source=f"<study {study.study_name}>", check_objective=False)
    point = experiment.with_overrides(baseline=True).base_trial()
    if not point:
        return None
    return next((t for t in complete if _same_values(t.params, point)), None)


def _same_values(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if a.keys() != b.keys():
        return False
    return all(
        math.isclose(float(a[k]), float(b[k]), rel_tol=1e-9)
        if isinstance(a[k], int | float) and isinstance(b[k], int | float)
        else a[k] == b[k]
        for k in a
    )
