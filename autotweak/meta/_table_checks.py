"""A table being read, and the rules every history table is checked against.

Each check raises :class:`HistoryError` naming the file (or "the data frame"), the column
and the rule, with the bad value and its row.
"""

from __future__ import annotations

import difflib
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autotweak.meta._histories import HistoryError

__all__ = ["Table", "check_kind", "check_present", "check_unique", "drop_repeats", "require", "show"]


class Table:
    """A frame and the names to cite in errors and sources."""

    def __init__(self, frame: pd.DataFrame, path: Path | None) -> None:
        self.frame = frame
        self.path = path
        self.where = str(path) if path is not None else "the data frame"
        self.label = path.name if path is not None else "frame"
        self.stem = path.name.split(".")[0] if path is not None else "frame"

    def row(self, position: int) -> str:
        """A data row as people find it: ``row 5`` of a frame, ``row 5 (line 7)`` of a CSV file.

        A CSV file's first line is its header, so data row 0 is on line 2.
        """
        if self.path is not None and ".csv" in self.path.suffixes:
            return f"row {position} (line {position + 2} of the file)"
        return f"row {position}"

    def fail(self, message: str) -> HistoryError:
        """The error to raise: ``message`` prefixed with the file."""
        return HistoryError(f"{self.where}: {message}")


def require(table: Table, columns: tuple[str, ...], layout: str) -> None:
    """The columns of the format are present and the table has rows."""
    present = list(table.frame.columns)
    for column in columns:
        if column not in present:
            near = difflib.get_close_matches(column, [str(c) for c in present], n=1)
            tip = f" (did you mean {near[0]!r}?)" if near else ""
            raise table.fail(f"column {column!r} must be present ({layout}){tip}, got columns {present}.")
    if table.frame.empty:
        raise table.fail("the table must hold at least one row, got none.")


def check_present(table: Table, columns: tuple[str, ...]) -> None:
    """No missing values in ``columns``."""
    for column in columns:
        missing = table.frame[column].isna().to_numpy()
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise table.fail(f"column {column!r} must have no missing values, got one at {table.row(row)}.")


def check_kind(table: Table, column: str, kind: str) -> None:
    """Numbers (``kind="float"``) or whole numbers (``"integer"``; whole floats are cast to int)."""
    series = table.frame[column]
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if numeric and kind == "integer" and not pd.api.types.is_integer_dtype(series):
        values = series.to_numpy(dtype=np.float64)
        fractional = np.flatnonzero(values != np.round(values))
        if not len(fractional):
            table.frame[column] = series.astype(np.int64)
            return
        row = int(fractional[0])
        raise table.fail(
            f"column {column!r} must hold whole numbers, got {show(series.iloc[row])} at {table.row(row)}."
        )
    if not numeric:
        first = _first_non_number(series)
        shown = (
            f"{show(series.iloc[first])} at {table.row(first)}"
            if first is not None
            else f"dtype {series.dtype}"
        )
        raise table.fail(f"column {column!r} must be of {kind} type, got {shown}.")


def _first_non_number(series: pd.Series) -> int | None:
    """The row of the first cell that is not a number (a missing cell is one).

    Text that does not read as a number comes first: in a CSV column with one bad cell,
    every cell is text.
    """
    cells = series.tolist()
    unreadable = [i for i, v in enumerate(cells) if isinstance(v, str) and not _reads_as_number(v)]
    other = [i for i, v in enumerate(cells) if v is not None and not _is_number(v)]
    rows = unreadable or other
    return rows[0] if rows else None


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool | np.bool_)


def _reads_as_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def show(value: Any) -> str:
    """A cell as Python writes it (``2.5``, not ``np.float64(2.5)``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def drop_repeats(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """``frame`` without rows that repeat an earlier row exactly (every column), and how many there were.

    A table written twice by the same logger holds such rows; rows that share their keys
    but differ elsewhere are left for :func:`check_unique` to refuse. The index is kept,
    so that an error can still cite a row of the file.
    """
    repeated = frame.duplicated().to_numpy()
    if not repeated.any():
        return frame, 0
    return frame[~repeated], int(repeated.sum())


def check_unique(table: Table, frame: pd.DataFrame, keys: list[str]) -> None:
    """No two rows with the same ``keys``; ``frame``'s index holds the rows' places in ``table``."""
    repeated = frame.duplicated(keys).to_numpy()
    if repeated.any():
        second = frame.iloc[int(np.flatnonzero(repeated)[0])]
        same = (frame[keys] == second[keys]).all(axis=1).to_numpy()
        first = int(frame.index[np.flatnonzero(same)[0]])
        shown = ", ".join(f"{key}={show(second[key])}" for key in keys)
        raise table.fail(
            f"rows must be unique by ({', '.join(keys)}), got {table.row(first)} and "
            f"{table.row(int(second.name))} with {shown} and other values that differ."
        )
