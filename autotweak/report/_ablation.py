"""The ablation path from the base config to the best: which single tweak contributes how much.

Starting from the base config, the tweaks that differ in the best trial are switched on one
at a time, each time the one that helps most. The value after each switch is *measured*
where the study holds a completed trial with exactly that config, and *estimated*
otherwise by a random forest fit on the study's completed trials. ``autotweak report
--ablate N`` runs up to N of the estimated configs as ordinary trials, so they become
measured.

A conditional tweak (``momentum`` only with ``optimizer: sgd``) moves with its parent: the
step that switches the parent on brings the tweaks it activates at the best's values, and
the step that switches it off takes the ones it deactivates away, so that every config of
the path is one a trial can run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from autotweak.engine._study import ATTR, state_of
from autotweak.engine._summary import search_trials
from autotweak.exceptions import AutotweakError
from autotweak.report._conditional import activate, base_tweaks, space_of, switch
from autotweak.report._sections import Section
from autotweak.space import SearchSpace

__all__ = ["ABLATION_ATTR", "Ablation", "AblationStep", "ablation_path", "run_ablation"]

_log = logging.getLogger(__name__)

ABLATION_ATTR = ATTR.ABLATION  # on trials that ``report --ablate`` ran; their MLflow runs get it as a tag
_MIN_TRIALS = 3  # completed trials needed to fit the surrogate


@dataclass(frozen=True)
class AblationStep:
    """One tweak switched from its base value to the best's value."""

    tweak: str
    before: Any
    after: Any
    value: float | None
    contribution: float | None  # signed so that positive is better
    measured: bool
    trial: int | None = None
    spread: float | None = None  # the forest's standard deviation, for estimated values
    failed: bool = False  # a trial of this config failed: it has no value, and is not run again
    brings: tuple[tuple[str, Any], ...] = ()  # conditional tweaks it switches on, at the best's values
    takes: tuple[str, ...] = ()  # conditional tweaks it switches off


@dataclass(frozen=True)
class Ablation:
    """The path: the base config's value, then one step per tweak that differs."""

    start: AblationStep
    steps: list[AblationStep]
    configs: list[dict[str, Any]]  # the params at the start and after each step
    held: list[str] = field(default_factory=list)  # tweaks the base config does not set
    off_path: list[int] = field(default_factory=list)  # ablation trials whose config the path left
    off_path_failed: list[int] = field(default_factory=list)  # failed ablation trials the path left
    estimated_alternatives: bool = False  # a step was chosen over a tweak whose value is estimated
    n_fit: int = 0  # completed trials the forest was fit on
    # the best config with a tweak that made the path worse back at its base value, where a trial
    # ran it: tweak -> (its value, or None if that trial failed; the trial's number)
    reverted: dict[str, tuple[float | None, int]] = field(default_factory=dict)

    def unmeasured(self) -> list[dict[str, Any]]:
        """The configs of the path whose value is only estimated, in path order (not failed ones)."""
        points = [self.start, *self.steps]
        return [c for c, p in zip(self.configs, points, strict=True) if not p.measured and not p.failed]

    def section(self, metric: str) -> Section:
        """The path as a report section, each value labelled measured or estimated."""
        measured = sum(p.measured for p in [self.start, *self.steps])
        total = len(self.steps) + 1
        notes = [
            "From the base config to the best, one tweak at a time, each time the one that helps most; "
            "contribution: the change of the value, positive = better."
        ]
        forest = f"a random forest fit on the study's {self.n_fit} completed trials (± its trees' spread)"
        if measured == total:
            notes.append(f"All {total} values are measured: the study holds a trial of each config.")
            if self.estimated_alternatives:
                notes.append(
                    f"The order was chosen among tweaks some of whose values are estimated by {forest}; "
                    "measured, they could change it."
                )
        else:
            notes.append(
                f"{measured} of {total} values are measured by a trial of that config; the others are "
                f"estimated by {forest}. `autotweak report --ablate N` runs up to N of them as trials, "
                "to the end."
            )
        failed = [p for p in [self.start, *self.steps] if p.failed]
        if failed:
            shown = ", ".join(f"{p.tweak} (trial {p.trial})" for p in failed)
            notes.append(f"A trial of the config failed, so it has no value and is not run again: {shown}.")
        worse = [p for p in self.steps if p.contribution is not None and p.contribution < 0]
        if worse:
            shown = ", ".join(f"{p.tweak} ({p.contribution:+.4g})" for p in worse)
            notes.append(f"Made the value worse where the path switched it on: {shown}.")
            untried = [p.tweak for p in worse if p.tweak not in self.reverted]
            if untried:
                notes.append(
                    f"The best config with {' or '.join(untried)} back at its base value may beat the best; "
                    "it is worth a trial."
                )
            for tweak, (value, trial) in self.reverted.items():
                outcome = "failed" if value is None else f"scored {_fmt(value)}"
                notes.append(f"The best config with {tweak} back at its base value: trial {trial} {outcome}.")
        if self.off_path:
            shown = ", ".join(str(n) for n in self.off_path)
            notes.append(
                f"Ablation trial(s) {shown} measured a config the path no longer takes: each measurement "
                "can change which tweak helps most next, so the path is drawn again from all of them."
            )
        if self.off_path_failed:
            shown = ", ".join(str(n) for n in self.off_path_failed)
            notes.append(
                f"Ablation trial(s) {shown} failed on a config the path no longer takes: a config "
                "without a value is passed over, so the path went another way."
            )
        if self.held:
            notes.append(
                "Held at the best's value throughout (the base config does not set them): "
                + ", ".join(self.held)
                + "."
            )
        rows = [_row("base config", "", self.start)]
        rows += [_row(s.tweak, _change(s), s) for s in self.steps]
        header = ["step", "change", metric, "contribution", "how", "trial"]
        return Section("Ablation path: base → best", notes, header, rows)


def ablation_path(study: optuna.Study, base: Mapping[str, Any]) -> Ablation | None:
    """The ablation path of ``study``; ``None`` without a best trial or a tweak that differs from the base."""
    complete = [t for t in study.get_trials(deepcopy=False) if _scored(t)]
    searched = search_trials(complete)  # the best is the search's, never an ablation trial
    if not searched:
        return None
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    best = (max if maximize else min)(searched, key=lambda t: float(t.value))  # type: ignore[arg-type]
    baseline = next((t for t in complete if t.user_attrs.get(ATTR.BASELINE)), None)
    given = base_tweaks(study, base, best.params)  # dotted names may be nested in the base
    space = space_of(study)
    start = dict(baseline.params) if baseline is not None else {}
    if not start:
        start = activate({**best.params, **given}, space)
    held = [k for k in best.params if k not in given and k in start and baseline is None]
    keys = [k for k in best.params if k in start and not _same(start[k], best.params[k])]
    if not keys:
        return None
    failed = [t for t in study.get_trials(deepcopy=False) if state_of(t) == "failed"]
    oracle = _Oracle(complete, maximize, failed)
    path = _greedy(oracle, start, best.params, keys, held, space)
    on_path = [dict(c) for c in path.configs]
    off = [t.number for t in complete if t.user_attrs.get(ABLATION_ATTR) and dict(t.params) not in on_path]
    worse = [p for p in path.steps if p.contribution is not None and p.contribution < 0]
    reverted: dict[str, tuple[float | None, int]] = {}
    for step in worse:
        config = _key(switch(best.params, step.tweak, start, space))
        if config in oracle.known:
            reverted[step.tweak] = oracle.known[config]
        elif config in oracle.failed:
            reverted[step.tweak] = (None, oracle.failed[config])
    fit = len(complete) if oracle.forest is not None else 0
    gone = [t.number for t in failed if t.user_attrs.get(ABLATION_ATTR) and dict(t.params) not in on_path]
    return replace(path, off_path=off, off_path_failed=sorted(gone), n_fit=fit, reverted=reverted)


def run_ablation(study: optuna.Study, budget: int, *, storage: str, tracking_uri: str | None) -> int:
    """Run up to ``budget`` estimated configs of the path as trials; return how many ran.

    The configs are queued in the study and run to the end (pruning off) by its own
    objective through the normal engine (tracked in MLflow, marked with the trial user
    attr ``autotweak.ablation``).
    Measuring some may change the path, so it is computed again until every value is
    measured or the budget is spent.

    Raises:
        AutotweakError: If the study holds no spec, or uses the grid sampler (which only
            runs its own grid).
    """
    from autotweak.engine._optimize import run_queued
    from autotweak.spec import Budget, Component, Experiment

    spec = study.user_attrs.get(ATTR.SPEC)
    if not spec:
        raise AutotweakError(
            f"study '{study.study_name}' holds no autotweak spec, so --ablate cannot run it."
        )
    experiment = Experiment.from_dict(spec, source=f"<study {study.study_name}>")
    if experiment.sampler.name == "grid":
        raise AutotweakError(
            "--ablate must be used with a study whose sampler is not 'grid' (the grid sampler runs "
            f"only its own grid), got sampler='grid' for study '{study.study_name}'."
        )
    queued = [
        t.number
        for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if not t.user_attrs.get(ABLATION_ATTR)
    ]
    if queued:
        raise AutotweakError(
            f"--ablate must be used with a study that has no queued trial of its search (ablation runs "
            f"every queued trial), got {len(queued)} queued in study '{study.study_name}' (trial(s) "
            f"{', '.join(map(str, queued[:5]))}): `autotweak resume {study.study_name}` runs them first."
        )
    unpruned = experiment.with_overrides(
        pruner=Component("none"), budget=Budget(trials=1), storage=storage, tracking_uri=tracking_uri
    )
    ran = 0
    while ran < budget:
        path = ablation_path(study, experiment.base)
        todo = [] if path is None else [c for c in path.unmeasured() if not experiment.space.invalid(c)]
        if not todo:
            break
        todo = todo[: budget - ran]
        for config in todo:
            study.enqueue_trial(config, user_attrs={ABLATION_ATTR: True})
        run_queued(unpruned)  # pruning off for these trials; the stored setup stays
        ran += len(todo)
    return ran


def _greedy(
    oracle: _Oracle,
    start: dict[str, Any],
    best: Mapping[str, Any],
    keys: list[str],
    held: list[str],
    space: SearchSpace | None,
) -> Ablation:
    current = dict(start)
    first = oracle.point("base config", None, None, current, None)
    steps: list[AblationStep] = []
    configs = [dict(current)]
    previous = first
    remaining = list(keys)
    estimated = False
    while remaining:
        candidates = [switch(current, key, best, space) for key in remaining]
        points = [
            _along(oracle.point(k, current[k], best[k], c, previous.value), current, c)
            for k, c in zip(remaining, candidates, strict=True)
        ]
        pick = oracle.pick(points)
        estimated = estimated or any(not p.measured for i, p in enumerate(points) if i != pick)
        current = candidates[pick]
        previous = points[pick]
        steps.append(previous)
        configs.append(dict(current))
        remaining.pop(pick)
    return Ablation(start=first, steps=steps, configs=configs, held=held, estimated_alternatives=estimated)


def _along(point: AblationStep, before: Mapping[str, Any], after: Mapping[str, Any]) -> AblationStep:
    """``point`` with the conditional tweaks its switch brought in or took away."""
    brings = tuple((k, v) for k, v in after.items() if k not in before)
    takes = tuple(k for k in before if k not in after)
    return replace(point, brings=brings, takes=takes) if brings or takes else point


def _change(step: AblationStep) -> str:
    """``adamw → sgd (with momentum 0.9)``: the switch, and the conditional tweaks that came or went."""
    parts = [f"with {k} {_fmt(v)}" for k, v in step.brings] + [f"without {k}" for k in step.takes]
    along = f" ({', '.join(parts)})" if parts else ""
    return f"{_fmt(step.before)} → {_fmt(step.after)}{along}"


class _Oracle:
    """Values of configs: a completed trial's where one matches, else the forest's estimate."""

    def __init__(
        self, complete: list[FrozenTrial], maximize: bool, failed: Sequence[FrozenTrial] = ()
    ) -> None:
        self.maximize = maximize
        self.known: dict[tuple[tuple[str, Any], ...], tuple[float, int]] = {}
        for trial in complete:
            self.known.setdefault(_key(trial.params), (float(trial.value), trial.number))  # type: ignore[arg-type]
        self.failed = {_key(t.params): t.number for t in sorted(failed, key=lambda t: -t.number)}
        self.distributions: dict[str, BaseDistribution] = {}
        for trial in complete:
            self.distributions.update(trial.distributions)
        self.names = sorted(self.distributions)
        self.forest = self._fit(complete)

    def _fit(self, complete: list[FrozenTrial]) -> Any:
        if len(complete) < _MIN_TRIALS or not self.names:
            return None
        from sklearn.ensemble import RandomForestRegressor

        x = np.array([self._encode(t.params) for t in complete])
        y = np.array([float(t.value) for t in complete])  # type: ignore[arg-type]
        return RandomForestRegressor(n_estimators=100, min_samples_leaf=1, random_state=0).fit(x, y)

    def _encode(self, params: Mapping[str, Any]) -> list[float]:
        return [_number(params.get(n), self.distributions[n]) for n in self.names]

    def point(
        self, tweak: str, before: Any, after: Any, config: Mapping[str, Any], previous: float | None
    ) -> AblationStep:
        """The value of ``config`` and its gain over ``previous``, measured where possible."""
        found = self.known.get(_key(config))
        failure = self.failed.get(_key(config))
        if found is None and failure is not None:
            return AblationStep(tweak, before, after, None, None, False, failure, failed=True)
        if found is not None:
            value, trial, spread, measured = found[0], found[1], None, True
        elif self.forest is not None:
            # The forest's own dtype, checked once here: each tree's check of it took ~0.7 ms, 1 s a report.
            x = np.array([self._encode(config)], dtype=np.float32)
            per_tree = np.array([tree.predict(x, check_input=False)[0] for tree in self.forest.estimators_])
            value, trial, spread, measured = float(per_tree.mean()), None, float(per_tree.std()), False
        else:
            value, trial, spread, measured = math.nan, None, None, False
        known = None if math.isnan(value) else value
        gain = (
            None if known is None or previous is None else (known - previous) * (1 if self.maximize else -1)
        )
        return AblationStep(tweak, before, after, known, gain, measured, trial, spread)

    def pick(self, points: list[AblationStep]) -> int:
        """Index of the point with the best value (unknown values last)."""
        sign = 1.0 if self.maximize else -1.0
        scores = [-math.inf if p.value is None else sign * p.value for p in points]
        return int(np.argmax(scores))


def _number(value: Any, distribution: BaseDistribution) -> float:
    if value is None:
        return math.nan
    if isinstance(distribution, CategoricalDistribution):
        choices = list(distribution.choices)
        return float(choices.index(value)) if value in choices else math.nan
    if getattr(distribution, "log", False) and float(value) > 0:
        return math.log(float(value))
    return float(value)


def _key(params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, _norm(v)) for k, v in params.items()))


def _norm(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.10g}")
    return value


def _same(a: Any, b: Any) -> bool:
    return bool(_norm(a) == _norm(b))


def _scored(trial: FrozenTrial) -> bool:
    return trial.state == TrialState.COMPLETE and trial.value is not None and math.isfinite(trial.value)


def _row(step: str, change: str, point: AblationStep) -> list[str]:
    value = "?" if point.value is None else f"{point.value:.4g}"
    if point.spread is not None:
        value += f" ± {point.spread:.2g}"
    gain = "" if point.contribution is None else f"{point.contribution + 0.0:+.4g}"  # + 0.0: no "-0"
    how = (
        "measured"
        if point.measured
        else "failed"
        if point.failed
        else "estimated"
        if point.value is not None
        else "unknown"
    )
    return [step, change, value, gain, how, "" if point.trial is None else str(point.trial)]


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
