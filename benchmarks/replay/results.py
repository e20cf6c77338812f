"""From runs to numbers: a row of metrics per run, then per-method tables and curves.

Averages are over the suite's non-saturated tasks of the mean over seeds, so each task
weighs the same whatever its number of seeds. Trials- and compute-to-target are medians
over all runs, a run that never reached the target counting as infinite (shown ``>B``).

Example:
    >>> frame = run_table(runs, stats, budget=50)  # doctest: +SKIP
    >>> regret_table(frame, "val", [10, 50])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from benchmarks.replay.data import TaskData
from benchmarks.replay.metrics import (
    BUDGETS,
    COMPUTES,
    RunCurves,
    TaskStats,
    average_ranks,
    false_prunes,
    run_curves,
    to_target,
    value_at,
    value_at_compute,
)
from benchmarks.replay.runner import Run

__all__ = [
    "Curves",
    "budgets_for",
    "compute_table",
    "matching_table",
    "rank_table",
    "regret_table",
    "run_table",
    "target_table",
]

KINDS = ("val", "test", "hpob")


def budgets_for(budget: int) -> list[int]:
    """The K of the tables: those of BENCHMARK.md below ``budget``, and ``budget``."""
    return [k for k in BUDGETS if k < budget] + [budget]


@dataclass
class Curves:
    """Run curves on non-saturated tasks: by (suite, method) for plots, and run by run.

    Attributes:
        by_method: ``(suite, method)`` -> its runs' curves.
        by_run: ``(suite, task, seed, method)`` -> the run's curves.
    """

    by_method: dict[tuple[str, str], list[RunCurves]]
    by_run: dict[tuple[str, str, int, str], RunCurves] = field(default_factory=dict)

    def by_trials(self, suite: str, method: str, budget: int) -> NDArray[np.float64]:
        """Mean validation regret after ``k = 1..budget`` trials."""
        runs = self.by_method.get((suite, method), [])
        return np.array([np.nanmean([value_at(c.val, k) for c in runs]) for k in range(1, budget + 1)])

    def by_compute(self, suite: str, method: str, grid: NDArray[np.float64]) -> NDArray[np.float64]:
        """Mean validation regret after ``grid`` full trainings of compute.

        A run that ended with less compute keeps its last regret; before its first trial
        ends a run is left out.
        """
        runs = self.by_method.get((suite, method), [])
        values = np.full((len(runs), len(grid)), np.nan)
        for i, curves in enumerate(runs):
            index = np.searchsorted(curves.compute, grid, side="right") - 1
            seen = index >= 0
            values[i, seen] = curves.val[index[seen]]
        return np.asarray(np.nanmean(values, axis=0), dtype=np.float64)

    def mean_compute(self, suite: str, method: str, budget: int) -> float:
        """Mean compute a run spent in its first ``budget`` trials."""
        runs = self.by_method.get((suite, method), [])
        return float(np.mean([value_at(c.compute, budget) for c in runs])) if runs else float("nan")


def run_table(
    runs: Sequence[Run],
    tasks: Mapping[tuple[str, str], TaskData],
    stats: Mapping[tuple[str, str], TaskStats],
    budget: int,
) -> tuple[pd.DataFrame, Curves]:
    """A row of metrics per run, and the curves of runs on non-saturated tasks.

    Args:
        runs: The runs.
        tasks: ``(suite, task)`` -> the task's data.
        stats: ``(suite, task)`` -> the task's stats.
        budget: The comparison's trial budget (the K of the last column).
    """
    rows = []
    curves = Curves({})
    for run in runs:
        key = (run.suite, run.task)
        curve = run_curves(run.trials, tasks[key], stats[key])
        rows.append(_row(run, curve, stats[key], budget) | _pruning(run, curve, tasks[key], budget))
        if not stats[key].saturated:
            curves.by_method.setdefault((run.suite, run.method), []).append(curve)
            curves.by_run[(run.suite, run.task, run.seed, run.method)] = curve
    return pd.DataFrame(rows), curves


def _pruning(run: Run, curve: RunCurves, task: TaskData, budget: int) -> dict[str, object]:
    """False prunes in the run's first ``budget`` trials, and regret at equal compute."""
    row: dict[str, object] = {"false_prunes": false_prunes(run.trials[:budget], task)}
    for compute in COMPUTES:
        row[f"val@compute{compute}"] = value_at_compute(curve, compute)
    return row


def _row(run: Run, curve: RunCurves, stats: TaskStats, budget: int) -> dict[str, object]:
    trials, compute, seconds = to_target(curve)
    row: dict[str, object] = {
        "suite": run.suite,
        "task": run.task,
        "method": run.method,
        "seed": run.seed,
        "saturated": stats.saturated,
        "trials_to_target": np.inf if trials is None else float(trials),
        "compute_to_target": np.inf if compute is None else compute,
        "seconds_to_target": np.inf if seconds is None else seconds,
        "compute_used": value_at(curve.compute, budget),
        "seconds_used": value_at(curve.seconds, budget),
        "pruned": sum(not t.complete for t in run.trials[:budget]),
    }
    for k in budgets_for(budget):
        for kind in KINDS:
            row[f"{kind}@{k}"] = value_at(getattr(curve, kind), k)
    return row


# -- tables -------------------------------------------------------------------------------
def _per_task(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Method x task: the mean over seeds of ``column`` on non-saturated tasks."""
    kept = frame[~frame["saturated"]]
    return kept.pivot_table(index="method", columns="task", values=column, aggfunc="mean", sort=False)


def regret_table(frame: pd.DataFrame, kind: str, ks: Sequence[int]) -> pd.DataFrame:
    """Method x K: mean regret over tasks, with the standard error over tasks (``<col> se``)."""
    out = {}
    for k in ks:
        per_task = _per_task(frame, f"{kind}@{k}")
        out[f"K={k}"] = per_task.mean(axis=1, skipna=True)
        counts = per_task.notna().sum(axis=1)
        out[f"K={k} se"] = per_task.std(axis=1, ddof=1, skipna=True) / np.sqrt(counts)
    return pd.DataFrame(out)


def rank_table(frame: pd.DataFrame, ks: Sequence[int]) -> pd.DataFrame:
    """Method x K: average rank over tasks of the mean validation regret over seeds."""
    out = {}
    for k in ks:
        per_task = _per_task(frame, f"val@{k}")
        scores = {m: per_task.loc[m].to_dict() for m in per_task.index}
        out[f"K={k}"] = pd.Series(average_ranks(scores))
    return pd.DataFrame(out)


def target_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Method x: runs reaching the target, median trials / compute / seconds to it, compute used."""
    kept = frame[~frame["saturated"]]
    grouped = kept.groupby("method", sort=False)
    return pd.DataFrame(
        {
            "reached": grouped["trials_to_target"].apply(lambda s: float(np.isfinite(s).mean())),
            "trials": grouped["trials_to_target"].median(),
            "compute": grouped["compute_to_target"].median(),
            "seconds": grouped["seconds_to_target"].median(),
            "compute_used": grouped["compute_used"].mean(),
            "pruned": grouped["pruned"].mean(),
            "false_prunes": grouped["false_prunes"].mean(),
        }
    )


def compute_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Method x compute C: mean over tasks of the validation regret after C full trainings."""
    return pd.DataFrame(
        {f"C={c}": _per_task(frame, f"val@compute{c}").mean(axis=1, skipna=True) for c in COMPUTES}
    )


def matching_table(curves: Curves, suite: str, reference: str, budget: int) -> pd.DataFrame:
    """Method x: compute to match the final regret of ``reference`` on the same task and seed.

    For each task and seed, the target is the validation regret ``reference`` ended with
    after ``budget`` trials; each method's compute to reach it is divided by the compute
    ``reference`` itself needed to reach it. Columns: ``reached`` (share of runs that
    reached it within their trials), ``compute`` and ``ratio`` (medians over runs, a run
    that never reached it counting as infinite).
    """
    rows: dict[str, dict[str, list[float]]] = {}
    for (s, task, seed, method), curve in curves.by_run.items():
        ref = curves.by_run.get((s, task, seed, reference))
        if s != suite or ref is None:
            continue
        target = value_at(ref.val, budget)
        own = _compute_to(_first(curve, budget), target)
        base = _compute_to(_first(ref, budget), target)
        row = rows.setdefault(method, {"compute": [], "ratio": []})
        row["compute"].append(own)
        row["ratio"].append(own / base if base > 0 else np.nan)
    return pd.DataFrame(
        {
            method: {
                "reached": float(np.isfinite(row["compute"]).mean()),
                "compute": float(np.median(row["compute"])),
                "ratio": float(np.nanmedian(row["ratio"])),
            }
            for method, row in rows.items()
        }
    ).T


def _compute_to(curves: RunCurves, target: float) -> float:
    """Compute spent until validation regret <= ``target``; infinite if never."""
    compute = to_target(curves, target)[1]
    return np.inf if compute is None else compute


def _first(curves: RunCurves, budget: int) -> RunCurves:
    """The curves of a run's first ``budget`` trials."""
    return RunCurves(*(getattr(curves, f.name)[:budget] for f in fields(RunCurves)))
