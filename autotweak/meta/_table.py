r"""Histories from long-format tables (Parquet or CSV files, or data frames).

Two formats, told apart by their columns:

**BENCHMARK.md format** (a ``config_id`` column): ``task``, ``config_id``, ``step``,
``val_score`` and optionally ``test_score`` and ``fit_seconds``; every other column is a
hyperparameter. One trial per ``(task, config_id)``: its curve is ``val_score`` (or the
``metric`` column) over ``step``, its value the last point. Without a ``space``, the
library space is used when the configs fit one (``hgb``, ``mlp``), else a space is inferred
from them; each task's descriptor says ``{"family": <space name>}``.

**Generic format** (a ``trial`` column):

==================  ==========  =============================================================
column              required    meaning
==================  ==========  =============================================================
``task``            yes         the task's name (one past experiment)
``trial``           yes         the trial's id within its task
``value``           yes         the metric (another column if ``metric`` names it)
``step``            no          the step of ``value``: one row per step makes a curve, and
                                the value at the last step is the trial's final value
``direction``       no          ``maximize`` or ``minimize``, the same on every row of a task
``complete``        no          ``false`` for a trial stopped early (pruned)
``param.<name>``    \-          a hyperparameter (``params.<name>`` also works); on any row
                                of the trial (a trial whose rows hold different values of
                                it is skipped and counted)
``tag.<name>``      no          a piece of the task's descriptor (numbers stay numbers)
==================  ==========  =============================================================

A file that breaks a rule (a missing column, a wrong type, missing keys, a repeated key)
raises :class:`HistoryError` naming the file, the column and the rule; a trial whose params
do not fit the space, or whose value is not a finite number, is skipped and counted.

Example:
    >>> import pandas as pd
    >>> from autotweak.space import SearchSpace
    >>> space = SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0}})
    >>> rows = {"task": ["a", "a"], "trial": [0, 1], "value": [0.5, 0.7], "param.x": [0.1, 0.9]}
    >>> read_table(pd.DataFrame(rows), space=space).task("a").scores().tolist()
    [0.5, 0.7]
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from autotweak.meta._family import family_space
from autotweak.meta._histories import (
    Direction,
    Histories,
    HistoryError,
    PastTrial,
    SkipReport,
    TaskHistory,
    as_space,
)
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
from autotweak.space import SearchSpace

__all__ = ["read_table"]

_log = logging.getLogger(__name__)

BENCHMARK_KEYS = ("task", "config_id", "step")
BENCHMARK_OTHER = ("val_score", "test_score", "fit_seconds")
PARAM_PREFIXES = ("param.", "params.")
TAG_PREFIX = "tag."
GENERIC_COLUMNS = ("task", "trial", "value", "step", "direction", "complete")


def read_table(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    space: SearchSpace | str | os.PathLike[str] | None = None,
    metric: str | None = None,
    direction: Direction = "maximize",
    renames: Mapping[str, str] | None = None,
    base: Mapping[str, Any] | None = None,
) -> Histories:
    """Read a long-format table (see the module's docs for both formats).

    Args:
        source: A ``.parquet``/``.csv`` file, or a data frame.
        space: The space to map params onto, or a library space name or space file
            (inferred from the configs if not given).
        metric: The value column (``val_score`` / ``value`` if not given).
        direction: The metric's direction where the table does not say.
        renames: Recorded param name -> the space's name.
        base: Values for params a trial lacks (e.g. the experiment's base config).

    Raises:
        HistoryError: If the table breaks a rule of its format, or an argument is of the
            wrong kind.

    Example:
        >>> histories = read_table("benchmarks/data/hgb.parquet")  # doctest: +SKIP
        >>> len(histories.tasks), histories.n_trials  # doctest: +SKIP
        (47, 12032)
    """
    if direction not in get_args(Direction):
        raise HistoryError(f"'direction' must be 'maximize' or 'minimize', got {direction!r}.")
    space = None if space is None else as_space(space, HistoryError)
    table = _load(source)
    columns = list(table.frame.columns)
    if "config_id" in columns:
        histories = _read_benchmark(table, space, metric or "val_score", direction, renames, base)
    elif "trial" in columns:
        histories = _read_generic(table, space, metric or "value", direction, renames, base)
    else:
        raise table.fail(
            "a history table must have a 'config_id' column (BENCHMARK.md format: task, config_id, "
            "step, val_score, ...) or a 'trial' column (generic format: task, trial, value, ...), "
            f"got columns {columns}."
        )
    _log.info(
        "histories from %s: %d tasks, %d trials; %s",
        table.where,
        len(histories.tasks),
        histories.n_trials,
        histories.skipped.summary(),
    )
    return histories


def _load(source: str | os.PathLike[str] | pd.DataFrame) -> Table:
    if isinstance(source, pd.DataFrame):
        return Table(source.reset_index(drop=True), None)
    if not isinstance(source, str | os.PathLike):
        raise HistoryError(
            "'source' must be the path of a .parquet or .csv file or a pandas DataFrame, "
            f"got {type(source).__name__} {source!r:.80}."
        )
    path = Path(source)
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if suffixes[-1:] in (
            [".parquet"],
            [".pq"],
        ):
            frame = pd.read_parquet(path)
        elif ".csv" in suffixes:
            frame = pd.read_csv(path)
        else:
            raise HistoryError(f"{path}: a history table must be a .parquet or .csv file, got {path.name!r}.")
    except HistoryError:
        raise
    except Exception as exc:  # pyarrow, pandas and the OS each raise their own
        raise HistoryError(
            f"{path}: must be a readable table file, got {type(exc).__name__}: {exc}"
        ) from None
    return Table(frame, path)


# -- curves -------------------------------------------------------------------------------
def _groups(frame: pd.DataFrame, keys: list[str]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Start and end rows of each run of equal keys in a sorted frame."""
    n = len(frame)
    new = np.zeros(n, dtype=bool)
    new[0] = True
    for key in keys:
        values = frame[key].to_numpy()
        new[1:] |= values[1:] != values[:-1]
    starts = np.flatnonzero(new)
    return starts, np.append(starts[1:], n)


def _trials(
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
    """One trial per group of rows (sorted by keys then step), grouped by task.

    ``differing`` names, per trial, a param whose rows disagree (the trial is skipped).
    """
    starts, ends = _groups(frame, keys)
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
    return out


# -- BENCHMARK.md format --------------------------------------------------------------------
def _read_benchmark(
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
    starts, _ = _groups(frame, ["task", "config_id"])
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
    differing = _differing(grouped, {h: h for h in hyperparameters})
    complete = _full_curves(frame, starts)
    trials = _trials(
        frame, ["task", "config_id"], metric, "step", params, sources, mapper, skipped, complete, differing
    )
    skipped.notes.update(mapper.notes)
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


# -- generic format -------------------------------------------------------------------------
def _read_generic(
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
    differing = _differing(grouped, param_columns)
    trials = _trials(
        frame, ["task", "trial"], metric, step, params, sources, mapper, skipped, complete, differing
    )
    skipped.notes.update(mapper.notes)
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


def _differing(grouped: Any, param_columns: Mapping[str, str]) -> list[str | None]:
    """For each trial, the first param holding different values on its rows, else ``None``."""
    many = grouped[list(param_columns)].nunique() > 1
    if not many.to_numpy().any():
        return [None] * len(many)
    return [next((param_columns[c] for c, m in row.items() if m), None) for row in many.to_dict("records")]


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
