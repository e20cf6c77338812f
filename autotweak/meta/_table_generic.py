"""Histories from a table of the generic format (a ``trial`` column).

See :mod:`autotweak.meta._table` for the format.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, get_args

import numpy as np
import pandas as pd

from autotweak.meta._family import family_space
from autotweak.meta._histories import Direction, Histories, HistoryError, SkipReport, TaskHistory
from autotweak.meta._mapping import ParamMapper
from autotweak.meta._table_checks import (
    Table,
    check_kind,
    check_present,
    check_unique,
    drop_repeats,
    require,
    show,
)
from autotweak.meta._table_curves import differing_params, group_trials
from autotweak.space import SearchSpace

__all__ = ["read_generic"]

PARAM_PREFIXES = ("param.", "params.")
TAG_PREFIX = "tag."
GENERIC_COLUMNS = ("task", "trial", "value", "step", "direction", "complete")


def read_generic(
    table: Table,
    space: SearchSpace | None,
    metric: str,
    direction: Direction,
    renames: Mapping[str, str] | None,
    base: Mapping[str, Any] | None,
) -> Histories:
    layout = (
        "the generic format has task, trial, value, optional step, direction, complete, param.* and tag.*"
    )
    require(table, ("task", "trial", metric), layout)
    columns = [str(c) for c in table.frame.columns]
    step = "step" if "step" in columns else None
    check_present(table, ("task", "trial", *([step] if step else [])))
    if step:
        check_kind(table, step, "integer")
    check_kind(table, metric, "float")
    ignored = _unknown_columns(table, columns, metric)
    param_columns = {c: c.split(".", 1)[1] for c in columns if c.startswith(PARAM_PREFIXES)}
    if not param_columns:
        raise table.fail(f"the table must have at least one 'param.<name>' column, got columns {columns}.")
    frame = table.frame.assign(task=table.frame["task"].astype(str))
    if not pd.api.types.is_numeric_dtype(frame["trial"]):
        frame["trial"] = frame["trial"].astype(str)
    directions = _directions(table, frame, direction)
    keys = ["task", "trial", *([step] if step else [])]
    frame = frame.sort_values(keys, kind="stable")
    frame, repeats = drop_repeats(frame)
    check_unique(table, frame, keys)
    frame = frame.reset_index(drop=True)
    grouped = frame.groupby(["task", "trial"], sort=False)
    records = grouped[list(param_columns)].first().rename(columns=param_columns).to_dict("records")
    params = [{str(k): v for k, v in record.items() if not _missing(v)} for record in records]
    if space is None:
        space = _generic_space(table, list(dict.fromkeys(param_columns.values())), params)
    complete = _complete(table, grouped) if "complete" in columns else None
    firsts = grouped[["task", "trial"]].head(1)
    pairs = zip(firsts["task"].tolist(), firsts["trial"].tolist(), strict=True)
    sources = [f"table:{table.label}#{t}/{n}" for t, n in pairs]
    mapper = ParamMapper(space, renames, base)
    skipped = SkipReport()
    differing = differing_params(grouped, param_columns)
    trials = group_trials(
        frame, ["task", "trial"], metric, step, params, sources, mapper, skipped, complete, differing
    )
    skipped.note_all(mapper.notes)
    for column in ignored:
        skipped.note(f"column {column!r} ignored (not a column of the generic format)")
    if repeats:
        skipped.note("row repeating another row exactly (dropped)", repeats)
    descriptors = _descriptors(frame, [c for c in columns if c.startswith(TAG_PREFIX)])
    tasks = tuple(
        TaskHistory(name, directions[name], tuple(found), descriptors.get(name, {}), f"table:{table.where}")
        for name, found in trials.items()
    )
    return Histories(tasks, skipped)


def _unknown_columns(table: Table, columns: list[str], metric: str) -> list[str]:
    """Columns the generic format does not read; one that looks like a misspelling is refused."""
    plain = list(dict.fromkeys([*GENERIC_COLUMNS, metric]))
    prefixes = [p.rstrip(".") for p in (*PARAM_PREFIXES, TAG_PREFIX)]
    unknown = [c for c in columns if c not in plain and not c.startswith((*PARAM_PREFIXES, TAG_PREFIX))]
    for column in unknown:
        head, dot, rest = column.partition(".")
        near = difflib.get_close_matches(head, prefixes, n=1, cutoff=0.6) if dot else []
        guess = (
            f"{near[0]}.{rest}"
            if near
            else next(iter(difflib.get_close_matches(column, plain, 1, 0.75)), None)
        )
        if guess is not None:
            raise table.fail(
                f"column {column!r} is not a column of the generic format (task, trial, {metric}, step, "
                f"direction, complete, param.<name>, tag.<name>); did you mean {guess!r}?"
            )
    return unknown


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _directions(table: Table, frame: pd.DataFrame, default: Direction) -> dict[str, Direction]:
    names = frame["task"].unique().tolist()
    if "direction" not in frame.columns:
        return dict.fromkeys(names, default)
    given = frame["direction"].astype(str).str.strip().str.lower()
    bad = (~given.isin(get_args(Direction))).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise table.fail(
            "column 'direction' must hold 'maximize' or 'minimize', "
            f"got {frame['direction'].iloc[row]!r} at {table.row(row)}."
        )
    per_task = given.groupby(frame["task"]).unique()
    mixed = {str(task): sorted(found) for task, found in per_task.items() if len(found) > 1}
    if mixed:
        task, found = next(iter(mixed.items()))
        raise table.fail(
            f"column 'direction' must be the same on every row of a task, got {found} for task {task!r}."
        )
    return {str(task): found[0] for task, found in per_task.items()}


def _complete(table: Table, grouped: Any) -> list[bool]:
    """Each trial's ``complete`` flag (its last row's), from booleans or true/false text."""
    last = grouped["complete"].last()
    text = last.astype(str).str.strip().str.lower()
    truth = {"true": True, "1": True, "1.0": True, "false": False, "0": False, "0.0": False}
    bad = ~text.isin(list(truth))
    if bad.any():
        task, trial = last[bad].index[0]
        raise table.fail(
            "column 'complete' must hold true or false, "
            f"got {show(last[bad].iloc[0])} for task {task!r} trial {show(trial)}."
        )
    return [truth[t] for t in text.tolist()]


def _generic_space(table: Table, names: list[str], params: list[dict[str, Any]]) -> SearchSpace:
    """A space inferred from the params; a column of whole floats (ints with gaps in a CSV) is int."""
    if any(len(p) != len(names) for p in params):
        raise table.fail(
            "'space' must be given when some trials lack some params (no space can be inferred)."
        )
    whole = [n for n in names if all(isinstance(p[n], float) and p[n].is_integer() for p in params)]
    configs = {i: p | {n: int(p[n]) for n in whole} for i, p in enumerate(params)}
    try:
        return family_space(table.stem, names, configs)[0]
    except HistoryError as exc:
        raise table.fail(str(exc)) from None


def _descriptors(frame: pd.DataFrame, tag_columns: list[str]) -> dict[str, dict[str, float | str]]:
    if not tag_columns:
        return {}
    firsts = frame.groupby("task", sort=False)[tag_columns].first()
    out: dict[str, dict[str, float | str]] = {}
    for task, row in zip(firsts.index.tolist(), firsts.to_dict("records"), strict=True):
        out[str(task)] = {
            column.removeprefix(TAG_PREFIX): _descriptor_value(value)
            for column, value in row.items()
            if not _missing(value)
        }
    return out


def _descriptor_value(value: Any) -> float | str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return str(value)
