"""The rules of the long format (BENCHMARK.md, "Data format"), checked one by one.

Each check raises :class:`BenchmarkDataError` naming the file, the column or the row
(0-based, in file order) and the rule, in the order a reader would fix them: columns,
types, values, keys, configs, steps.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from autotweak import AutotweakError

__all__ = [
    "KEYS",
    "REQUIRED",
    "BenchmarkDataError",
    "check_configs",
    "check_keys",
    "check_schema",
    "check_steps",
    "check_values",
]

KEYS = ("task", "config_id", "step")
REQUIRED: dict[str, str] = {
    "task": "string",
    "config_id": "integer",
    "step": "integer",
    "val_score": "float",
    "test_score": "float",
    "fit_seconds": "float",
}
SCORES = ("val_score", "test_score")


class BenchmarkDataError(AutotweakError, ValueError):
    """A benchmark data file breaks a rule of the long format; the message names the file,
    the column or row, and the rule."""


def _is_string(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        return _is_string(kind.value_type)
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind))


_KINDS: dict[str, Callable[[pa.DataType], bool]] = {
    "string": _is_string,
    "integer": pa.types.is_integer,
    "float": pa.types.is_floating,
}


def _is_hyperparameter_type(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or _is_string(kind)
    )


def _fail(path: Path, message: str) -> BenchmarkDataError:
    return BenchmarkDataError(f"{path}: {message}")


def _where(frame: pd.DataFrame, row: int) -> str:
    task, config_id = frame.at[row, "task"], frame.at[row, "config_id"]
    return f"row {row} (task {task!r}, config_id {config_id})"


# -- columns and types --------------------------------------------------------------------
def check_schema(schema: pa.Schema, path: Path) -> list[str]:
    """Check the columns and their types; return the hyperparameter columns, in file order."""
    names = list(schema.names)
    for column, kind in REQUIRED.items():
        if column not in names:
            raise _fail(
                path,
                f"column {column!r} must be present (the long format has {', '.join(REQUIRED)} "
                f"and one column per hyperparameter), got columns {names}.",
            )
        if not _KINDS[kind](schema.field(column).type):
            raise _fail(path, f"column {column!r} must be of {kind} type, got {schema.field(column).type}.")
    hyperparameters = [name for name in names if name not in REQUIRED]
    if not hyperparameters:
        raise _fail(path, f"the file must have at least one hyperparameter column, got columns {names}.")
    for column in hyperparameters:
        kind = schema.field(column).type
        if not _is_hyperparameter_type(kind):
            raise _fail(
                path, f"hyperparameter column {column!r} must be integer, float, bool or string, got {kind}."
            )
    return hyperparameters


# -- values -------------------------------------------------------------------------------
def check_values(frame: pd.DataFrame, path: Path, hyperparameters: list[str]) -> None:
    """No empty file, no missing keys or hyperparameters, finite scores, ``fit_seconds >= 0``."""
    if frame.empty:
        raise _fail(path, "the file must hold at least one row, got none.")
    for column in [*KEYS, *hyperparameters]:
        missing = frame[column].isna().to_numpy()
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise _fail(path, f"column {column!r} must have no missing values, got one at row {row}.")
    for column in (*SCORES, "fit_seconds"):
        values = frame[column].to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if column == "fit_seconds":
            bad |= values < 0
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            rule = "finite numbers >= 0" if column == "fit_seconds" else "finite numbers (no NaN)"
            raise _fail(
                path,
                f"column {column!r} must hold {rule}, got {float(values[row])!r} at {_where(frame, row)}.",
            )


# -- keys ---------------------------------------------------------------------------------
def check_keys(frame: pd.DataFrame, path: Path) -> None:
    """Unique ``(task, config_id, step)`` and steps increasing down the rows of each curve."""
    duplicated = frame.duplicated(list(KEYS), keep="first").to_numpy()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        raise _fail(
            path,
            f"rows must be unique by (task, config_id, step), got a second step={frame.at[row, 'step']} "
            f"at {_where(frame, row)}.",
        )
    previous = frame.groupby(["task", "config_id"], sort=False)["step"].shift()
    decreasing = (frame["step"] <= previous).to_numpy()
    if decreasing.any():
        row = int(np.flatnonzero(decreasing)[0])
        raise _fail(
            path,
            f"the steps of a curve must increase from row to row, got step={frame.at[row, 'step']} after "
            f"step={int(previous.iloc[row])} at {_where(frame, row)}.",
        )


# -- configs ------------------------------------------------------------------------------
def check_configs(frame: pd.DataFrame, path: Path, hyperparameters: list[str]) -> None:
    """A config_id has the same hyperparameters on every task and step."""
    first_row = frame.groupby("config_id", sort=False).cumcount() == 0
    reference = frame.loc[first_row, ["config_id", *hyperparameters]].set_index("config_id")
    for column in hyperparameters:
        expected = reference[column].reindex(frame["config_id"]).to_numpy()
        differs = frame[column].to_numpy() != expected
        if differs.any():
            row = int(np.flatnonzero(differs)[0])
            config_id = frame.at[row, "config_id"]
            first = int(np.flatnonzero((frame["config_id"] == config_id).to_numpy())[0])
            raise _fail(
                path,
                f"the hyperparameters of a config_id must be the same on every task and step, got "
                f"{column}={_show(frame.at[first, column])} at {_where(frame, first)} but "
                f"{column}={_show(frame.at[row, column])} at {_where(frame, row)}.",
            )


def _show(value: Any) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value)


# -- steps --------------------------------------------------------------------------------
def check_steps(frame: pd.DataFrame, path: Path) -> None:
    """Every curve of the file has the same steps (number and values)."""
    curves = frame.groupby(["task", "config_id"], sort=False)["step"]
    steps = curves.apply(tuple)
    (task, config_id), reference = steps.index[0], steps.iloc[0]
    for (other_task, other_id), other in steps.items():
        if other == reference:
            continue
        what = "number of steps" if len(other) != len(reference) else "steps"
        shown = (len(reference), len(other)) if what == "number of steps" else (list(reference), list(other))
        raise _fail(
            path,
            f"every config of a family must have the same {what}, got {shown[0]} for task {task!r} "
            f"config_id {config_id} but {shown[1]} for task {other_task!r} config_id {other_id}.",
        )
