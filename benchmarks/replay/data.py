"""Read family data files (BENCHMARK.md long format) into per-task arrays, validated.

A file holds one family: its tasks share the configs (``config_id`` -> hyperparameters)
and the steps of their curves. The family's search space is the library's when the file
is ``hgb``/``mlp`` data (or has exactly such a family's hyperparameters, in range);
otherwise it is inferred from the columns.

Example:
    >>> family = read_family("benchmarks/data/hgb.parquet")  # doctest: +SKIP
    >>> task = family.tasks["keel_iris"]  # doctest: +SKIP
    >>> task.val.shape  # (configs, steps)  # doctest: +SKIP
    (256, 20)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from autotweak import SearchSpace
from autotweak.meta import LIBRARY_FAMILIES, HistoryError, family_space
from autotweak.meta import infer_space as _infer_space
from benchmarks.replay._checks import (
    BenchmarkDataError,
    check_configs,
    check_keys,
    check_schema,
    check_steps,
    check_values,
)

__all__ = ["LIBRARY_FAMILIES", "BenchmarkDataError", "FamilyData", "TaskData", "infer_space", "read_family"]


@dataclass(frozen=True, eq=False)
class TaskData:
    """The recorded curves of one task; row ``i`` of every array is config ``config_ids[i]``.

    Attributes:
        name: The task's name.
        config_ids: ``(n_configs,)`` config ids, increasing.
        params: The hyperparameters of each row (shared with the family's config table).
        steps: ``(n_steps,)`` the step values of the curves (iterations, epochs).
        val: ``(n_configs, n_steps)`` validation scores.
        test: ``(n_configs, n_steps)`` test scores.
        fit_seconds: ``(n_configs,)`` each config's whole training time.
    """

    name: str
    config_ids: NDArray[np.int64]
    params: tuple[Mapping[str, Any], ...]
    steps: NDArray[np.int64]
    val: NDArray[np.float64]
    test: NDArray[np.float64]
    fit_seconds: NDArray[np.float64]

    @property
    def n_configs(self) -> int:
        """Number of configs recorded for the task."""
        return len(self.config_ids)

    @property
    def n_steps(self) -> int:
        """Number of steps of each curve."""
        return len(self.steps)

    @property
    def final_val(self) -> NDArray[np.float64]:
        """Validation score of each config after full training."""
        return self.val[:, -1]

    @property
    def final_test(self) -> NDArray[np.float64]:
        """Test score of each config after full training."""
        return self.test[:, -1]


@dataclass(frozen=True, eq=False)
class FamilyData:
    """A family's data file: its search space, config table and tasks.

    Attributes:
        name: The file's stem (``hgb`` for ``benchmarks/data/hgb.parquet``).
        path: The file read.
        space: The search space the configs live in.
        library_family: The library family whose space this is, or ``None`` if inferred.
        configs: ``config_id`` -> hyperparameters.
        tasks: Task name -> its curves, in sorted order of names.
    """

    name: str
    path: Path
    space: SearchSpace
    library_family: str | None
    configs: Mapping[int, Mapping[str, Any]]
    tasks: Mapping[str, TaskData]


def read_family(path: str | os.PathLike[str]) -> FamilyData:
    """Read and validate one family file.

    Raises:
        BenchmarkDataError: If the file breaks a rule of the long format (the message
            names the file, the column or row, and the rule).
    """
    path = Path(path)
    table = _read_table(path)
    hyperparameters = check_schema(table.schema, path)
    frame = table.to_pandas()
    check_values(frame, path, hyperparameters)
    check_keys(frame, path)
    check_configs(frame, path, hyperparameters)
    check_steps(frame, path)
    frame = frame.sort_values(["task", "config_id", "step"], kind="stable", ignore_index=True)
    configs = _config_table(frame, hyperparameters)
    space, library = _family_space(path, hyperparameters, configs)
    tasks = {str(name): _task(str(name), rows, configs) for name, rows in frame.groupby("task", sort=True)}
    return FamilyData(path.stem, path, space, library, configs, tasks)


def read_families(paths: Iterable[str | os.PathLike[str]]) -> list[FamilyData]:
    """Read several family files (see :func:`read_family`)."""
    return [read_family(path) for path in paths]


def _read_table(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise BenchmarkDataError(f"{path}: must be a readable Parquet file, got {exc}") from None


def _config_table(frame: pd.DataFrame, hyperparameters: list[str]) -> dict[int, dict[str, Any]]:
    """``config_id`` -> hyperparameters as Python values (the space's checks want ``int``)."""
    firsts = frame.drop_duplicates("config_id").sort_values("config_id")
    columns = {name: firsts[name].tolist() for name in hyperparameters}
    ids = firsts["config_id"].tolist()
    return {int(cid): {name: columns[name][i] for name in hyperparameters} for i, cid in enumerate(ids)}


def _task(name: str, rows: pd.DataFrame, configs: Mapping[int, Mapping[str, Any]]) -> TaskData:
    config_ids = rows["config_id"].drop_duplicates().to_numpy(dtype=np.int64)
    n_configs = len(config_ids)

    def grid(column: str) -> NDArray[np.float64]:
        return np.asarray(rows[column].to_numpy(dtype=np.float64).reshape(n_configs, -1), dtype=np.float64)

    return TaskData(
        name=name,
        config_ids=config_ids,
        params=tuple(configs[int(cid)] for cid in config_ids),
        steps=rows["step"].to_numpy(dtype=np.int64)[: len(rows) // n_configs],
        val=grid("val_score"),
        test=grid("test_score"),
        fit_seconds=grid("fit_seconds")[:, -1].copy(),
    )


# -- search space -------------------------------------------------------------------------
def _family_space(
    path: Path, hyperparameters: list[str], configs: Mapping[int, Mapping[str, Any]]
) -> tuple[SearchSpace, str | None]:
    """The library space of the family if the file fits it, else an inferred space.

    A file named after a library family (``hgb.parquet``) must fit that family's space.
    """
    try:
        return family_space(path.stem, hyperparameters, configs)
    except HistoryError as exc:
        raise BenchmarkDataError(f"{path}: {exc}") from None


def infer_space(
    name: str, hyperparameters: list[str], configs: Mapping[int, Mapping[str, Any]]
) -> SearchSpace:
    """A space from the config table (see :func:`autotweak.meta.infer_space`).

    Example:
        >>> infer_space("x", ["lr"], {0: {"lr": 1e-4}, 1: {"lr": 0.1}}).to_dict()
        {'lr': {'type': 'float', 'low': 0.0001, 'high': 0.1, 'log': True}}
    """
    try:
        return _infer_space(name, hyperparameters, configs)
    except HistoryError as exc:
        raise BenchmarkDataError(str(exc)) from None
