"""Histories from a table of the BENCHMARK.md format (a ``config_id`` column).

See :mod:`autotweak.meta._table` for the format.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from autotweak.meta._family import family_space
from autotweak.meta._histories import Direction, Histories, HistoryError, SkipReport, TaskHistory
from autotweak.meta._mapping import ParamMapper
from autotweak.meta._table_checks import Table, check_kind, check_present, check_unique, drop_repeats, require
from autotweak.meta._table_curves import differing_params, group_trials, row_groups
from autotweak.space import SearchSpace

__all__ = ["read_benchmark"]

BENCHMARK_KEYS = ("task", "config_id", "step")
BENCHMARK_OTHER = ("val_score", "test_score", "fit_seconds")


def read_benchmark(
    table: Table,
    space: SearchSpace | None,
    metric: str,
    direction: Direction,
    renames: Mapping[str, str] | None,
    base: Mapping[str, Any] | None,
) -> Histories:
    layout = "the BENCHMARK.md format has task, config_id, step, val_score and one column per hyperparameter"
    require(table, (*BENCHMARK_KEYS, "val_score"), layout)
    if metric not in BENCHMARK_OTHER[:2] or metric not in table.frame.columns:
        raise table.fail(
            f"'metric' must be a score column of the table (val_score, test_score), got {metric!r}."
        )
    hyperparameters = [c for c in table.frame.columns if c not in (*BENCHMARK_KEYS, *BENCHMARK_OTHER)]
    if not hyperparameters:
        raise table.fail(
            f"the table must have at least one hyperparameter column, got {list(table.frame.columns)}."
        )
    check_present(table, (*BENCHMARK_KEYS, *hyperparameters))
    for column in ("config_id", "step"):
        check_kind(table, column, "integer")
    check_kind(table, metric, "float")
    frame = table.frame.assign(task=table.frame["task"].astype(str))
    frame = frame.sort_values(list(BENCHMARK_KEYS), kind="stable")
    frame, repeats = drop_repeats(frame)
    check_unique(table, frame, list(BENCHMARK_KEYS))
    frame = frame.reset_index(drop=True)
    starts, _ = row_groups(frame, ["task", "config_id"])
    firsts = frame.iloc[starts]
    columns = [firsts[c].tolist() for c in hyperparameters]
    params = [dict(zip(hyperparameters, row, strict=True)) for row in zip(*columns, strict=True)]
    ids = firsts["config_id"].tolist()
    if space is None:
        configs = _distinct_configs(firsts["task"].tolist(), ids, params)
        try:
            space, _ = family_space(table.stem, hyperparameters, configs)
        except HistoryError as exc:
            raise table.fail(str(exc)) from None
    sources = [f"table:{table.label}#{t}/{c}" for t, c in zip(firsts["task"].tolist(), ids, strict=True)]
    mapper = ParamMapper(space, renames, base)
    skipped = SkipReport()
    grouped = frame.groupby(["task", "config_id"], sort=False)
    differing = differing_params(grouped, {h: h for h in hyperparameters})
    complete = _full_curves(frame, starts)
    trials = group_trials(
        frame, ["task", "config_id"], metric, "step", params, sources, mapper, skipped, complete, differing
    )
    skipped.note_all(mapper.notes)
    cut = complete.count(False)
    if cut:
        skipped.note("curve ends before its task's last step (kept as not complete)", cut)
    if repeats:
        skipped.note("row repeating another row exactly (dropped)", repeats)
    descriptor: dict[str, float | str] = {"family": space.name} if space.name else {}
    tasks = tuple(
        TaskHistory(str(name), direction, tuple(found), dict(descriptor), f"table:{table.where}")
        for name, found in trials.items()
    )
    return Histories(tasks, skipped)


def _full_curves(frame: pd.DataFrame, starts: NDArray[np.intp]) -> list[bool]:
    """For each config (a run of rows from ``starts``), whether its curve reaches its task's last step."""
    ends = np.append(starts[1:], len(frame)) - 1
    last = frame["step"].to_numpy()[ends]
    task_last = frame.groupby("task", sort=False)["step"].transform("max").to_numpy()[ends]
    return [bool(b) for b in last >= task_last]


def _distinct_configs(
    tasks: list[Any], ids: list[Any], params: list[dict[str, Any]]
) -> dict[Any, dict[str, Any]]:
    """Every distinct config of the table, keyed by its config_id.

    Tasks usually share their configs (the same config_id, the same params); a task that
    gives a config_id other params adds that config too, keyed ``"<config_id> (task <name>)"``,
    so that the space is inferred from every row, not from one task's.
    """
    configs: dict[Any, dict[str, Any]] = {}
    for task, config_id, config in zip(tasks, ids, params, strict=True):
        first = configs.setdefault(config_id, config)
        if first is not config and first != config:
            configs.setdefault(f"{config_id} (task {task!r})", config)
    return configs
