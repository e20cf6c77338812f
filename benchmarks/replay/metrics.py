"""Normalized regret, trials- and compute-to-target, and average ranks (BENCHMARK.md, "Metrics").

The incumbent after K trials is the completed trial with the best validation score so far
(the first found on ties), as Optuna's ``best_trial``: a pruned trial never trained fully,
so it is not a candidate. Regrets after K trials, over the task's design (final scores):

- validation: ``(best_val - incumbent_val) / (best_val - median_val)``;
- test: ``(best_test - incumbent_test) / (best_test - median_test)`` for the config that
  validation picked;
- HPO-B convention: ``(best_val - incumbent_val) / (best_val - min_val)``.

Before any trial completes there is no incumbent, and the worst config of the design
stands in for it. A task is saturated when ``best_val - median_val < 0.01``.

Example:
    >>> regret(0.9, best=1.0, reference=0.8)  # half way from the median to the best
    0.5
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.stats import rankdata

from benchmarks.replay.data import TaskData
from benchmarks.replay.simulate import ReplayTrial

__all__ = [
    "BUDGETS",
    "SATURATION",
    "TARGET",
    "RunCurves",
    "TaskStats",
    "COMPUTES",
    "TOP",
    "average_ranks",
    "false_prunes",
    "regret",
    "run_curves",
    "to_target",
    "value_at",
    "value_at_compute",
]

BUDGETS = (1, 5, 10, 25, 50)
TARGET = 0.05
TOP = 5
COMPUTES = (10, 25)
SATURATION = 0.01


@dataclass(frozen=True)
class TaskStats:
    """The reference points of a task's design (final scores of all its configs)."""

    best_val: float
    median_val: float
    min_val: float
    best_test: float
    median_test: float
    min_test: float

    @classmethod
    def of(cls, task: TaskData) -> TaskStats:
        """The stats of ``task``'s final validation and test scores."""
        val, test = task.final_val, task.final_test
        return cls(
            float(val.max()),
            float(np.median(val)),
            float(val.min()),
            float(test.max()),
            float(np.median(test)),
            float(test.min()),
        )

    @property
    def spread(self) -> float:
        """``best_val - median_val``."""
        return self.best_val - self.median_val

    @property
    def saturated(self) -> bool:
        """Nearly every config is as good as the best: left out of averages."""
        return self.spread < SATURATION


def regret(found: float, best: float, reference: float) -> float:
    """``(best - found) / (best - reference)``; NaN when ``best == reference``."""
    scale = best - reference
    return (best - found) / scale if scale > 0 else float("nan")


@dataclass(frozen=True)
class RunCurves:
    """A run's metrics after each of its trials (index ``k - 1`` is after ``k`` trials)."""

    val: NDArray[np.float64]
    test: NDArray[np.float64]
    hpob: NDArray[np.float64]
    compute: NDArray[np.float64]
    seconds: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.val)


def run_curves(trials: Sequence[ReplayTrial], task: TaskData, stats: TaskStats) -> RunCurves:
    """Regrets of the incumbent, and cumulative compute and simulated seconds, trial by trial."""
    final_test = dict(zip(task.config_ids.tolist(), task.final_test.tolist(), strict=True))
    val_found, test_found = stats.min_val, stats.min_test
    best_so_far = -np.inf
    val, test, hpob = [], [], []
    for trial in trials:
        if trial.complete and trial.val > best_so_far:
            best_so_far = trial.val
            val_found, test_found = trial.val, final_test[trial.config_id]
        val.append(regret(val_found, stats.best_val, stats.median_val))
        test.append(regret(test_found, stats.best_test, stats.median_test))
        hpob.append(regret(val_found, stats.best_val, stats.min_val))
    return RunCurves(
        val=np.array(val, dtype=np.float64),
        test=np.array(test, dtype=np.float64),
        hpob=np.array(hpob, dtype=np.float64),
        compute=np.cumsum([t.compute for t in trials], dtype=np.float64),
        seconds=np.cumsum([t.seconds for t in trials], dtype=np.float64),
    )


def value_at(curve: NDArray[np.float64], k: int) -> float:
    """The value after ``k`` trials; the last value if the run was shorter."""
    if len(curve) == 0:
        return float("nan")
    return float(curve[min(k, len(curve)) - 1])


def to_target(curves: RunCurves, target: float = TARGET) -> tuple[int | None, float | None, float | None]:
    """Trials, compute and simulated seconds until validation regret <= ``target`` (``None`` if never)."""
    reached = np.flatnonzero(curves.val <= target)
    if len(reached) == 0:
        return None, None, None
    k = int(reached[0])
    return k + 1, float(curves.compute[k]), float(curves.seconds[k])


def false_prunes(trials: Sequence[ReplayTrial], task: TaskData, top: int = TOP) -> int:
    """Trials the pruner stopped among the run's ``top`` best by full-training validation score.

    Each trial is ranked by its config's recorded final score (what it would have reached
    had it been trained fully), so a pruned trial counts as a false prune if it would have
    been among the run's best ``top`` (ties: the earlier trial first).
    """
    final = dict(zip(task.config_ids.tolist(), task.final_val.tolist(), strict=True))
    ranked = sorted(range(len(trials)), key=lambda i: (-final[trials[i].config_id], i))[:top]
    return sum(not trials[i].complete for i in ranked)


def value_at_compute(curves: RunCurves, compute: float) -> float:
    """Validation regret after the last trial that ended within ``compute`` full trainings.

    A run that ended with less compute keeps its last regret; NaN before its first trial ends.
    """
    index = int(np.searchsorted(curves.compute, compute, side="right")) - 1
    return float(curves.val[index]) if index >= 0 else float("nan")


def average_ranks(scores: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Mean over tasks of each method's rank (1 = lowest score; ties share the mean rank).

    Args:
        scores: Method -> task -> score (lower is better); tasks missing for a method,
            or NaN, are left out of every method's ranks.
    """
    methods = sorted(scores)
    tasks = sorted(set.intersection(*(set(scores[m]) for m in methods))) if methods else []
    table = np.array([[scores[m][t] for m in methods] for t in tasks], dtype=np.float64)
    table = table[~np.isnan(table).any(axis=1)] if len(table) else table.reshape(0, len(methods))
    if len(table) == 0:
        return {m: float("nan") for m in methods}
    ranks = np.array([rankdata(row) for row in table])
    return {m: float(ranks[:, j].mean()) for j, m in enumerate(methods)}
