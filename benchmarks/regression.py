"""Regression tasks outside the public benchmark: the ``hgb`` design on five regression datasets.

Every public task is a classification (validation accuracy), and so is every curve the
shipped models learned from. This module builds an external family file of another kind:
scikit-learn's ``HistGradientBoostingRegressor`` trained with each of the 256 configs of
the ``hgb`` design (same space, same 100 iterations scored every 5th) on five regression
datasets that ship inside scikit-learn (no download): the diabetes data and four
generated ones (Friedman 1-3 and a sparse linear problem, fixed seeds). Scores are the
negative validation and test RMSE, in the target's own units, so a curve falls from large
losses and its scale differs from task to task; splits are 60/20/20 with
``random_state=0``. Replayed with ``--test-data``, the comparison then judges the search
methods on tasks none of them was built or tuned on::

    python -m benchmarks.regression                   # -> benchmarks/data_external/hgb_regression.parquet
    python -m benchmarks.run --test-data benchmarks/data_external/hgb_regression.parquet \\
        --out benchmarks/results_regression/RESULTS.md

Building takes about four minutes on one core; the file is committed, so the comparison
reruns without it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from benchmarks._store import curves_table, schema_for, write_atomic
from benchmarks.design import DESIGN_SIZE, design_configs
from benchmarks.families import HGB_EVERY, HGB_ITERATIONS, Curve

__all__ = ["DATASETS", "OUT", "build", "main", "train_regressor"]

OUT = Path(__file__).parent / "data_external" / "hgb_regression.parquet"

Arrays = tuple[NDArray[np.float64], NDArray[np.float64]]


def _diabetes() -> Arrays:
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    return X, y


def _friedman(kind: int, noise: float) -> Callable[[], Arrays]:
    def make() -> Arrays:
        from sklearn import datasets

        maker = getattr(datasets, f"make_friedman{kind}")
        X, y = maker(n_samples=1000, noise=noise, random_state=0)
        return X, y

    return make


def _linear() -> Arrays:
    from sklearn.datasets import make_regression

    X, y = make_regression(n_samples=800, n_features=20, n_informative=8, noise=20.0, random_state=0)
    return X, y


DATASETS: dict[str, Callable[[], Arrays]] = {
    "reg_diabetes": _diabetes,
    "reg_friedman1": _friedman(1, 1.0),
    "reg_friedman2": _friedman(2, 50.0),
    "reg_friedman3": _friedman(3, 0.1),
    "reg_linear": _linear,
}


def _splits(X: NDArray[np.float64], y: NDArray[np.float64]) -> Iterator[NDArray[np.float64]]:
    """Train, validation and test (60/20/20, ``random_state=0``), features then targets."""
    from sklearn.model_selection import train_test_split

    X_train, X_rest, y_train, y_rest = train_test_split(X, y, test_size=0.4, random_state=0)
    X_valid, X_test, y_valid, y_test = train_test_split(X_rest, y_rest, test_size=0.5, random_state=0)
    yield from (X_train, y_train, X_valid, y_valid, X_test, y_test)


def train_regressor(data: Sequence[NDArray[np.float64]], config: dict[str, Any]) -> Curve:
    """Fit the regressor with ``config``; the negative RMSE after every 5th iteration.

    Args:
        data: Train, validation and test arrays, features then targets (see ``_splits``).
        config: Keyword arguments of the regressor (the ``hgb`` space's parameters).
    """
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    X_train, y_train, X_valid, y_valid, X_test, y_test = data
    model = HistGradientBoostingRegressor(
        max_iter=HGB_ITERATIONS, early_stopping=False, random_state=0, **config
    )
    steps = tuple(range(HGB_EVERY, HGB_ITERATIONS + 1, HGB_EVERY))
    with threadpool_limits(limits=1, user_api="openmp"):
        start = time.process_time()
        model.fit(X_train, y_train)
        fit_seconds = time.process_time() - start
        val = _staged_loss(model.staged_predict(X_valid), y_valid, steps)
        test = _staged_loss(model.staged_predict(X_test), y_test, steps)
    return Curve(steps, val, test, fit_seconds)


def _staged_loss(
    stages: Iterator[NDArray[np.float64]], y: NDArray[np.float64], steps: tuple[int, ...]
) -> tuple[float, ...]:
    """Negative RMSE after each iteration in ``steps`` (a model that stopped early keeps its last)."""
    wanted = set(steps)
    scores: list[float] = []
    last = float("nan")
    for iteration, predicted in enumerate(stages, start=1):
        last = -float(np.sqrt(np.mean((predicted - y) ** 2)))
        if iteration in wanted:
            scores.append(last)
    return tuple(scores + [last] * (len(steps) - len(scores)))


def build(
    out: Path, tasks: Sequence[str] = tuple(DATASETS), n_configs: int = DESIGN_SIZE, *, quiet: bool = False
) -> Path:
    """Train every config of the ``hgb`` design on ``tasks`` and write the family file ``out``."""
    from autotweak.space import load_space

    configs = design_configs("hgb", n_configs)
    schema = schema_for(configs, load_space("hgb").names)
    tables: list[pa.Table] = []
    for task in tasks:
        started = time.monotonic()
        data = list(_splits(*DATASETS[task]()))
        curves = [train_regressor(data, config) for config in configs]
        tables.append(curves_table(task, configs, curves, schema))
        if not quiet:
            print(f"{task}: {len(configs)} configs in {time.monotonic() - started:.0f} s", flush=True)
    write_atomic(pa.concat_tables(tables), out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build the file (see the module's documentation)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.regression", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--tasks", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--out", type=Path, default=OUT, help=f"default: {OUT}")
    args = parser.parse_args(argv)
    print(f"wrote {build(args.out, args.tasks)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
