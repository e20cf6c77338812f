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

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

import pandas as pd

from autotweak.meta._histories import Direction, Histories, HistoryError, as_space
from autotweak.meta._table_benchmark import read_benchmark
from autotweak.meta._table_checks import Table
from autotweak.meta._table_generic import read_generic
from autotweak.space import SearchSpace

__all__ = ["read_table"]

_log = logging.getLogger(__name__)


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
        histories = read_benchmark(table, space, metric or "val_score", direction, renames, base)
    elif "trial" in columns:
        histories = read_generic(table, space, metric or "value", direction, renames, base)
    else:
        raise table.fail(
            "a history table must have a 'config_id' column (BENCHMARK.md format: task, config_id, "
            "step, val_score, ...) or a 'trial' column (generic format: task, trial, value, ...), "
            f"got columns {columns}."
        )
    _log.info(
        "histories from %s: %d task(s), %d trial(s); %s",
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
