"""What a study cost: compute against the full grid, what pruning saved, time and dollars per worker.

Compute is counted in full-training equivalents: a trial that ran to the end costs 1, a
trial stopped after ``k`` of the spec's ``metric.steps`` reports costs ``k / steps``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autotweak._money import usd
from autotweak._trial_costs import (
    COST_ATTR,
    ESTIMATE_ATTR,
    estimate_note,
    read_estimate,
    spot_dollars,
    trial_dollars,
)
from autotweak.engine._study import ATTR
from autotweak.engine._summary import attempts_of, frozen_compute, steps_of
from autotweak.exceptions import AutotweakError
from autotweak.report._ablation import ABLATION_ATTR
from autotweak.report._sections import Section

__all__ = [
    "COST_ATTR",
    "GRID_POINTS",
    "ComputeAccount",
    "WorkerCost",
    "compute_account",
    "study_dollars",
    "study_estimate",
    "worker_costs",
]

GRID_POINTS = 4
"""Values per numeric parameter of the grid a non-grid study is compared with (the grid
sampler's own default ``n_points``); a categorical parameter contributes all its choices."""


@dataclass(frozen=True)
class ComputeAccount:
    """Compute spent, the full grid it replaces, and what pruning saved."""

    used: float
    trials: int
    grid_size: int | None
    grid_note: str
    pruned: int
    pruned_compute: float
    steps_known: bool
    queued: int = 0
    """Trials waiting to run (enqueued, or queued again after an interruption): not counted."""
    ablation: int = 0
    """Trials that ``report --ablate`` ran: not counted in ``used`` and ``trials``."""
    ablation_compute: float = 0.0

    @property
    def pruning_saved(self) -> float:
        """Full trainings the pruned trials would have cost beyond what they did cost."""
        return self.pruned - self.pruned_compute

    def section(self) -> Section:
        """The account as a report section."""
        waiting = ""
        if self.queued:
            waiting = f" ({self.queued} more {'is' if self.queued == 1 else 'are'} queued to run)"
        over = _count(self.trials, "trial")
        ablated = ""
        if self.ablation:
            ablated = (
                f", and {self.ablation_compute:.2f} over "
                f"{_count(self.ablation, 'ablation trial')} (report --ablate)"
            )
        notes = [f"Compute used: {self.used:.2f} full trainings over {over}{ablated}{waiting}."]
        if self.grid_size:
            notes.append(
                f"The full grid ({self.grid_note}) has {_count(self.grid_size, 'config')}, i.e. "
                f"{_count(self.grid_size, 'full training')}: "
                f"this study used {self.used / self.grid_size:.1%} of it."
            )
        else:
            notes.append(f"No full grid to compare with: {self.grid_note}.")
        if self.pruned:
            notes.append(
                f"Pruning stopped {_count(self.pruned, 'trial')} after "
                f"{self.pruned_compute:.2f} full trainings; "
                f"running them to the end would have cost {self.pruned}: pruning saved "
                f"{self.pruning_saved:.2f} full trainings."
            )
        if not self.steps_known:
            notes.append(
                "The spec sets no metric.steps, so a stopped trial counts as a full training once it has "
                "reported a step (one stopped before any report, as none)."
            )
        return Section("Compute", notes)


def compute_account(study: optuna.Study) -> ComputeAccount:
    """Count the compute of ``study`` and size the grid of its space."""
    every = study.get_trials(deepcopy=False)
    ran = [t for t in every if t.state != TrialState.WAITING]
    ablation = [t for t in ran if t.user_attrs.get(ABLATION_ATTR)]
    trials = [t for t in ran if not t.user_attrs.get(ABLATION_ATTR)]
    steps = steps_of(study)
    attempts = attempts_of(every)
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    size, note = _grid(study.user_attrs.get(ATTR.SPEC, {}))
    return ComputeAccount(
        used=sum(frozen_compute(t, steps, attempts) for t in trials),
        trials=len(trials),
        grid_size=size,
        grid_note=note,
        pruned=len(pruned),
        pruned_compute=sum(frozen_compute(t, steps, attempts) for t in pruned),
        steps_known=steps is not None,
        queued=len(every) - len(ran),
        ablation=len(ablation),
        ablation_compute=sum(frozen_compute(t, steps, attempts) for t in ablation),
    )


def _count(n: int, noun: str) -> str:
    """``1 trial``, ``2 trials``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _grid(spec: Mapping[str, Any]) -> tuple[int | None, str]:
    """The grid's size and what it is; ``None`` with the reason when there is none."""
    if not spec:
        return None, "the study holds no autotweak spec"
    from autotweak.spec import Experiment

    try:
        experiment = Experiment.from_dict(dict(spec), check_objective=False)
    except AutotweakError as exc:  # e.g. a spec from another version of autotweak
        return None, f"the study's spec cannot be read ({exc})"
    sampler = experiment.sampler
    if sampler.name == "grid":
        n_points = int(sampler.args.get("n_points", GRID_POINTS))
        what = f"the grid sampler's own grid, {n_points} values per numeric parameter"
    else:
        n_points = GRID_POINTS
        what = f"{n_points} values per numeric parameter, every choice of a categorical one"
    try:
        grid = experiment.space.grid(n_points)
    except AutotweakError as exc:
        return None, str(exc).rstrip(".")
    return math.prod(len(v) for v in grid.values()), what


@dataclass(frozen=True)
class WorkerCost:
    """Trials, their time in Optuna (start to end, summed) and dollars of one worker type."""

    worker: str
    trials: int
    wall_s: float
    dollars: float | None


def worker_costs(
    study: optuna.Study,
    hosts: Mapping[int, str],
    now: datetime | None = None,
    *,
    types: Mapping[int, str] | None = None,
) -> list[WorkerCost]:
    """Group trials by worker type: the cloud instance type (``types``, by trial number), else their host."""
    costs = _trial_costs(study)
    types = types or {}
    groups: dict[str, list[FrozenTrial]] = defaultdict(list)
    for trial in study.get_trials(deepcopy=False):
        if trial.datetime_start is not None:
            number = trial.number
            groups[types.get(number) or _worker(hosts.get(number), number in costs)].append(trial)
    rows = []
    for worker, trials in sorted(groups.items()):
        dollars = [costs[t.number] for t in trials if t.number in costs]
        rows.append(
            WorkerCost(
                worker=worker,
                trials=len(trials),
                wall_s=sum(_wall(t, now) for t in trials),
                dollars=sum(dollars) if dollars else None,
            )
        )
    return rows


def workers_section(
    rows: list[WorkerCost], study_dollars: float | None = None, estimate: str = ""
) -> Section:
    """Time and dollars per worker type as a report section; ``estimate``: what the study's cost includes."""
    table = [
        [r.worker, str(r.trials), _duration(r.wall_s), "—" if r.dollars is None else usd(r.dollars)]
        for r in rows
    ]
    notes = [
        "Trial time is the sum of each trial's time from its start to its end in Optuna: the "
        "objective, and around it the sampler's work and the opening of the trial's MLflow run "
        "(running trials count until now). Each trial's MLflow run holds the objective alone, "
        "as `duration_s` (a run rebuilt by `reconcile` holds the Optuna time), so those sum to less."
    ]
    if any(r.dollars is not None for r in rows):
        total = sum(r.dollars for r in rows if r.dollars is not None)
        notes.append(f"Dollars as recorded by the cloud workers: {usd(total)} for the trials' own time.")
    if study_dollars is not None:
        notes.append(
            f"The study's instances cost {usd(study_dollars)} in all, boot and idle time included{estimate}."
        )
    header = ["worker type", "trials", "trial time", "dollars"]
    return Section("Time and cost per worker type", notes, header, table)


def study_dollars(study: optuna.Study) -> float | None:
    """What the study's cloud instances cost in all, where the launcher recorded it."""
    return spot_dollars(study.user_attrs)  # summed over launchers: one may still run, or be killed


def study_estimate(study: optuna.Study) -> str:
    """Words that say the study's cost includes instances billed at an upper bound of their price."""
    return estimate_note(*read_estimate(study.user_attrs.get(ESTIMATE_ATTR)))


def _trial_costs(study: optuna.Study) -> dict[int, float]:
    """Dollars per trial number (see :func:`~autotweak._trial_costs.trial_dollars`)."""
    return trial_dollars(study.user_attrs, study.get_trials(deepcopy=False))


def _worker(host: str | None, costed: bool) -> str:
    kind = "cloud" if costed else "local"
    return f"{kind} ({host})" if host else kind


def _wall(trial: FrozenTrial, now: datetime | None) -> float:
    if trial.datetime_start is None:
        return 0.0
    end = trial.datetime_complete or now or datetime.now()
    return max((end - trial.datetime_start).total_seconds(), 0.0)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"
