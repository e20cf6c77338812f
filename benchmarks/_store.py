"""The long-format Parquet files of autotweak-bench: per-task shards and the family file.

Columns (BENCHMARK.md, "Data format"): ``task``, ``config_id``, ``step``, ``val_score``,
``test_score``, ``fit_seconds``, then one column per hyperparameter in space order. Every
file is written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.families import Curve

__all__ = [
    "BASE_COLUMNS",
    "DesignMismatchError",
    "check_design",
    "completed_tasks",
    "curves_table",
    "merge_into",
    "read_table",
    "schema_for",
    "write_atomic",
]

BASE_COLUMNS = ("task", "config_id", "step", "val_score", "test_score", "fit_seconds")
_BASE_TYPES = (pa.string(), pa.int64(), pa.int64(), pa.float64(), pa.float64(), pa.float64())
_SORT_KEYS = [("task", "ascending"), ("config_id", "ascending"), ("step", "ascending")]


class DesignMismatchError(ValueError):
    """Recorded rows disagree with the design this build would train."""


def schema_for(configs: Sequence[Mapping[str, Any]], param_names: Sequence[str]) -> pa.Schema:
    """The file schema: the base columns, then one column per hyperparameter.

    A hyperparameter column is ``int64`` when every value is an integer, ``float64`` when
    every value is a number, otherwise ``string``.
    """
    fields = [pa.field(name, kind) for name, kind in zip(BASE_COLUMNS, _BASE_TYPES, strict=True)]
    for name in param_names:
        values = [config[name] for config in configs if config.get(name) is not None]
        fields.append(pa.field(name, _arrow_type(values)))
    return pa.schema(fields)


def _arrow_type(values: Sequence[Any]) -> pa.DataType:
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return pa.int64()
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return pa.float64()
    return pa.string()


def curves_table(
    task: str,
    configs: Sequence[Mapping[str, Any]],
    curves: Sequence[Curve],
    schema: pa.Schema,
) -> pa.Table:
    """One row per (config, step) of one task, in config then step order."""
    columns: dict[str, list[Any]] = {name: [] for name in schema.names}
    for config_id, (config, curve) in enumerate(zip(configs, curves, strict=True)):
        for step, val, test in zip(curve.steps, curve.val_scores, curve.test_scores, strict=True):
            row = {
                "task": task,
                "config_id": config_id,
                "step": step,
                "val_score": val,
                "test_score": test,
                "fit_seconds": curve.fit_seconds,
            }
            for name in schema.names:
                columns[name].append(row[name] if name in row else config.get(name))
    return pa.table(columns, schema=schema)


def write_atomic(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` via a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, temporary)
    os.replace(temporary, path)


def read_table(path: Path, schema: pa.Schema) -> pa.Table | None:
    """Read a family file or shard; ``None`` if it does not exist.

    Raises:
        DesignMismatchError: if its columns are not those of ``schema``.
    """
    if not path.is_file():
        return None
    table = pq.read_table(path)
    if table.schema.names != schema.names:
        raise DesignMismatchError(
            f"{path} must have the columns {schema.names}, got {table.schema.names}; "
            "it was built for another search space. Move it away to rebuild."
        )
    return table.cast(schema)


def merge_into(path: Path, tables: Iterable[pa.Table], schema: pa.Schema) -> pa.Table:
    """Add ``tables`` (whole tasks) to the family file at ``path``, atomically.

    Rows of the existing file for the same tasks are replaced. Returns the merged table.
    """
    new = [table for table in tables if table.num_rows]
    existing = read_table(path, schema)
    parts = []
    if existing is not None:
        replaced = pa.array(
            sorted({t for table in new for t in table.column("task").to_pylist()}), pa.string()
        )
        keep = pc.invert(pc.is_in(existing.column("task"), value_set=replaced))
        parts.append(existing.filter(keep))
    merged = pa.concat_tables(parts + new).sort_by(_SORT_KEYS)
    write_atomic(merged, path)
    return merged


def completed_tasks(table: pa.Table | None, n_configs: int, source: Path) -> set[str]:
    """Tasks present in ``table``, each checked to hold exactly configs ``0..n_configs-1``.

    Raises:
        DesignMismatchError: if a task holds another number of configs.
    """
    if table is None or table.num_rows == 0:
        return set()
    frame = table.select(["task", "config_id"]).to_pandas()
    counts = frame.groupby("task")["config_id"].agg(["nunique", "max"])
    wrong = counts[(counts["nunique"] != n_configs) | (counts["max"] != n_configs - 1)]
    if len(wrong):
        raise DesignMismatchError(
            f"every task in {source} must hold configs 0..{n_configs - 1}, got "
            f"{dict(zip(wrong.index, wrong['nunique'], strict=True))} configs; "
            "pass the --n-configs it was built with, or move the file away."
        )
    return set(counts.index)


def check_design(table: pa.Table | None, configs: Sequence[Mapping[str, Any]], source: Path) -> None:
    """Check that the hyperparameters recorded for each ``config_id`` are the design's.

    Raises:
        DesignMismatchError: on the first disagreeing value.
    """
    if table is None or table.num_rows == 0:
        return
    names = [name for name in table.schema.names if name not in BASE_COLUMNS]
    frame = table.select(["config_id", *names]).to_pandas().drop_duplicates("config_id")
    for row in frame.itertuples(index=False):
        config_id = int(row[0])
        if not 0 <= config_id < len(configs):
            raise DesignMismatchError(
                f"every config_id in {source} must be in 0..{len(configs) - 1}, got {config_id}."
            )
        expected = configs[config_id]
        for name, value in zip(names, row[1:], strict=True):
            if not _same(value, expected.get(name)):
                raise DesignMismatchError(
                    f"config {config_id} in {source} must have {name}={expected.get(name)!r} "
                    f"(the current design), got {value!r}; the search space changed. "
                    "Move the file away to rebuild."
                )


def _same(recorded: Any, expected: Any) -> bool:
    if expected is None or recorded is None or (isinstance(recorded, float) and math.isnan(recorded)):
        return expected is None and (recorded is None or pd.isna(recorded))
    if isinstance(expected, int | float) and not isinstance(expected, bool):
        return math.isclose(float(recorded), float(expected), rel_tol=1e-12, abs_tol=0.0)
    return bool(str(recorded) == str(expected))
