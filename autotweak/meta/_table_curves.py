"""Rows to trials: the rows of each trial, its curve and its final value (both formats)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from autotweak.meta._histories import PastTrial, SkipReport
from autotweak.meta._mapping import ParamMapper

__all__ = ["differing_params", "group_trials", "row_groups"]


def row_groups(frame: pd.DataFrame, keys: list[str]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Start and end rows of each run of equal keys in a sorted frame."""
    n = len(frame)
    new = np.zeros(n, dtype=bool)
    new[0] = True
    for key in keys:
        values = frame[key].to_numpy()
        new[1:] |= values[1:] != values[:-1]
    starts = np.flatnonzero(new)
    return starts, np.append(starts[1:], n)


def group_trials(
    frame: pd.DataFrame,
    keys: list[str],
    value: str,
    step: str | None,
    params: list[dict[str, Any]],
    sources: list[str],
    mapper: ParamMapper,
    skipped: SkipReport,
    complete: list[bool] | None = None,
    differing: list[str | None] | None = None,
) -> dict[Any, list[PastTrial]]:
    """One trial per group of rows (sorted by keys then step), grouped by task (tasks with one at least).

    ``differing`` names, per trial, a param whose rows disagree (the trial is skipped).
    """
    starts, ends = row_groups(frame, keys)
    values = frame[value].to_numpy(dtype=np.float64)
    finite = np.isfinite(values)
    whole = np.logical_and.reduceat(finite, starts).tolist()  # every point of the curve finite
    steps = frame[step].to_numpy(dtype=np.int64).tolist() if step else []
    points = values.tolist()
    tasks = frame["task"].to_numpy()[starts].tolist()
    out: dict[Any, list[PastTrial]] = {task: [] for task in dict.fromkeys(tasks)}
    for i, (start, end) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        if not finite[end - 1]:
            skipped.add(f"{value} is not a finite number at the last step", sources[i])
            continue
        if differing is not None and differing[i] is not None:
            skipped.add(f"param {differing[i]!r} differs between the trial's rows", sources[i])
            continue
        config, reason = mapper.map(params[i])
        if config is None:
            skipped.add(reason or "params do not fit the space", sources[i])
            continue
        trial_steps: tuple[int, ...] = ()
        curve: tuple[float, ...] = ()
        if step and whole[i]:
            trial_steps, curve = tuple(steps[start:end]), tuple(points[start:end])
        elif step:
            keep = [j for j in range(start, end) if finite[j]]
            trial_steps, curve = tuple(steps[j] for j in keep), tuple(points[j] for j in keep)
        done = True if complete is None else complete[i]
        out[tasks[i]].append(PastTrial(config, points[end - 1], trial_steps, curve, sources[i], done))
    # a task none of whose trials fit is no task, as for the MLflow and Optuna readers
    return {task: trials for task, trials in out.items() if trials}


def differing_params(grouped: Any, param_columns: Mapping[str, str]) -> list[str | None]:
    """For each trial, the first param holding different values on its rows, else ``None``."""
    many = grouped[list(param_columns)].nunique() > 1
    if not many.to_numpy().any():
        return [None] * len(many)
    return [next((param_columns[c] for c, m in row.items() if m), None) for row in many.to_dict("records")]
