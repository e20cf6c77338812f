"""The replay objective: snap a proposal to the task's design and read its recorded curve.

A method proposes a config through the real engine (``autotweak.Study``, ask/tell, in
memory). The proposal is snapped to the nearest config of the task's design not used yet
in this study (Euclidean distance in the unit cube of the space; categorical values must
match exactly, unless no unused config has them). The trial then reads that config's
curve step by step with ``trial.report`` (step ``1..n_steps``, one per recorded point, as
a user who declares ``metric.steps: n_steps`` would), asks ``trial.should_prune()`` after
each report, and is told ``pruned`` or its final validation score. The method sees the
validation curve only; test scores and times are kept for accounting.

Example:
    >>> replay = Replay(task, Design(space, task.params))  # doctest: +SKIP
    >>> run_study(replay, space, seed=0, budget=50, sampler=Component("tpe"))  # doctest: +SKIP
    >>> replay.trials[0].compute, replay.clock  # doctest: +SKIP
    (1.0, 0.42)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from numpy.typing import NDArray

import autotweak
from autotweak import AutotweakError, SearchSpace
from autotweak.space import CategoricalParam
from autotweak.spec import Budget, Component, Experiment, Metric
from benchmarks.replay.data import TaskData

__all__ = ["Design", "DesignExhaustedError", "Replay", "ReplayTrial", "run_study"]

METRIC = "val_score"


class DesignExhaustedError(AutotweakError):
    """Every config of the task's design has been used in this study."""


@dataclass(frozen=True)
class ReplayTrial:
    """The accounting of one replayed trial.

    Attributes:
        config_id: The design config the proposal was snapped to.
        steps_read: Points of the curve read before the trial ended.
        n_steps: Points of the full curve.
        fit_seconds: The config's recorded training time (the whole curve).
        val: Validation score at the last step read (the final one if complete).
        test: Test score at the last step read.
        complete: ``False`` if the pruner stopped the trial.
    """

    config_id: int
    steps_read: int
    n_steps: int
    fit_seconds: float
    val: float
    test: float
    complete: bool

    @property
    def compute(self) -> float:
        """Compute used, in full trainings: steps read / steps."""
        return self.steps_read / self.n_steps

    @property
    def seconds(self) -> float:
        """Simulated wall time: ``fit_seconds`` times the fraction of the curve read."""
        return self.fit_seconds * self.compute


class Design:
    """The configs of a design in unit-cube coordinates, for nearest-config lookups.

    Args:
        space: The search space (no conditional parameters).
        params: The hyperparameters of each design config, in row order.
    """

    def __init__(self, space: SearchSpace, params: Sequence[Mapping[str, Any]]) -> None:
        self.space = space
        tunable = space.tunable
        self._categorical = np.array([isinstance(p, CategoricalParam) for p in tunable], dtype=bool)
        self.units = np.array([self._unit(config) for config in params], dtype=np.float64).reshape(
            len(params), len(tunable)
        )

    def __len__(self) -> int:
        return len(self.units)

    def _unit(self, config: Mapping[str, Any]) -> list[float]:
        coordinates = self.space.to_unit(config)
        if any(u is None for u in coordinates):
            raise AutotweakError("replays need configs with every tunable parameter set (no conditions).")
        return [float(u) for u in coordinates if u is not None]

    def nearest(self, config: Mapping[str, Any], free: NDArray[np.bool_]) -> int:
        """Row of the nearest free config; same categorical values first, first row on ties.

        Raises:
            DesignExhaustedError: If no row is free.
        """
        if not free.any():
            raise DesignExhaustedError(f"all {len(self)} configs of the design are used.")
        point = np.array(self._unit(config), dtype=np.float64)
        numeric, categorical = ~self._categorical, self._categorical
        same = free & np.all(self.units[:, categorical] == point[categorical], axis=1)
        if same.any():
            candidates, dims = same, numeric
        else:
            candidates, dims = free, np.ones_like(numeric)
        distance = np.sum((self.units[:, dims] - point[dims]) ** 2, axis=1)
        rows = np.flatnonzero(candidates)
        return int(rows[np.argmin(distance[rows])])


class Replay:
    """One task replayed for one study: snapping, curve reading, accounting, a clock.

    Args:
        task: The recorded curves.
        design: The task's configs in the unit cube (row ``i`` is ``task.config_ids[i]``).
    """

    def __init__(self, task: TaskData, design: Design) -> None:
        if len(design) != task.n_configs:
            raise AutotweakError(
                f"the design must have one row per config of task {task.name!r} ({task.n_configs}), "
                f"got {len(design)}."
            )
        self.task = task
        self.design = design
        self.trials: list[ReplayTrial] = []
        self._free = np.ones(task.n_configs, dtype=bool)

    @property
    def n_steps(self) -> int:
        """Points of each curve."""
        return self.task.n_steps

    @property
    def n_free(self) -> int:
        """Configs not used yet."""
        return int(self._free.sum())

    @property
    def clock(self) -> float:
        """Simulated seconds spent so far (trials run one after another)."""
        return sum(trial.seconds for trial in self.trials)

    def snap(self, config: Mapping[str, Any]) -> int:
        """Take the nearest unused config of the design; returns its row."""
        row = self.design.nearest(config, self._free)
        self._free[row] = False
        return row

    def evaluate(self, row: int) -> ReplayTrial:
        """Read the whole curve of an unused ``row`` directly, without an engine (full grid)."""
        if not self._free[row]:
            raise AutotweakError(f"row {row} of the design was already used in this study.")
        self._free[row] = False
        return self._record(row, self.n_steps, complete=True)

    def play(self, trial: autotweak.Trial, study: autotweak.Study) -> ReplayTrial:
        """Snap ``trial``'s config, report its curve until pruned, and tell the study."""
        row = self.snap(trial.config)
        curve = self.task.val[row]
        for index in range(self.n_steps):
            trial.report(float(curve[index]), index + 1)
            if trial.should_prune():
                study.tell(trial, state="pruned")
                return self._record(row, index + 1, complete=False)
        study.tell(trial, float(curve[-1]))
        return self._record(row, self.n_steps, complete=True)

    def _record(self, row: int, steps_read: int, *, complete: bool) -> ReplayTrial:
        task = self.task
        record = ReplayTrial(
            config_id=int(task.config_ids[row]),
            steps_read=steps_read,
            n_steps=self.n_steps,
            fit_seconds=float(task.fit_seconds[row]),
            val=float(task.val[row, steps_read - 1]),
            test=float(task.test[row, steps_read - 1]),
            complete=complete,
        )
        self.trials.append(record)
        return record


def run_study(
    replay: Replay,
    space: SearchSpace,
    *,
    seed: int,
    budget: int,
    sampler: Component,
    pruner: Component | None = None,
    first: Iterable[Mapping[str, Any]] = (),
) -> list[ReplayTrial]:
    """Run one in-memory ask/tell study of ``budget`` trials on ``replay``.

    Args:
        replay: The task being replayed (its trials are appended to).
        space: The search space the engine samples.
        seed: The experiment's seed.
        budget: Trials; capped at the configs left in the design.
        sampler: Sampler by autotweak registry name.
        pruner: Pruner by registry name (none by default).
        first: Configs proposed first, in order (``enqueue_trial``), before the sampler's own.

    Returns:
        The trials of this study.
    """
    start = len(replay.trials)
    trials = min(budget, replay.n_free)
    if trials < 1:
        return []
    experiment = Experiment(
        name="replay",
        space=space,
        metric=Metric(METRIC, "maximize", steps=replay.n_steps),
        budget=Budget(trials=trials),
        sampler=sampler,
        pruner=pruner or Component("none"),
        seed=seed,
        storage="memory",
        baseline=False,
    )
    queued = iter(first)
    names = [p.name for p in space.tunable]
    with quiet(), autotweak.Study(experiment, track=False) as study:
        # Enqueue one proposal per ask, never past the budget: a waiting trial is always run.
        for _ in range(trials):
            proposal = next(queued, None)
            if proposal is not None:
                study.optuna_study.enqueue_trial({name: proposal[name] for name in names})
            trial = study.ask()
            if trial is None:
                break
            replay.play(trial, study)
    return replay.trials[start:]


@contextmanager
def quiet() -> Iterator[None]:
    """Silence Optuna's per-study info lines and autotweak's per-trial logs in replays."""
    loggers = [logging.getLogger(name) for name in ("optuna", "autotweak")]
    saved = [logger.level for logger in loggers]
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)
        for logger, level in zip(loggers, saved, strict=True):
            logger.setLevel(level)
