"""One thread per native thread pool in the worker processes a benchmark spawns.

Benchmarks run as many worker processes as there are cores. numpy's and scipy's OpenBLAS,
OpenMP (scikit-learn, torch) and MKL each start a thread per core by default, and they read
their limits when they load, which is before any code of ours runs in a spawned worker: the
limits must be in the environment the worker is spawned with.

The same environment pins MKL's code path (``MKL_CBWR=COMPATIBLE``): MKL, which torch uses
for its linear algebra, otherwise picks kernels by CPU (AVX2, AVX-512), and Optuna's
``GPSampler`` then proposes configs that differ in their last digits from one machine to
another (from trial 10 on keel_breast, seed 3, under ``MKL_ENABLE_INSTRUCTIONS=AVX2``), which
can snap a proposal to another config: the likely cause of gp's hgb regret at K=50 reading
0.157 in one rerun (another machine) and 0.147 in the others, from one run (keel_breast, seed
3). A run with ``--processes 1`` spawns no worker and keeps the environment it was started in.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["REPRODUCIBLE_MKL", "THREAD_VARIABLES", "one_thread_environment"]

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
REPRODUCIBLE_MKL = {"MKL_CBWR": "COMPATIBLE"}


@contextmanager
def one_thread_environment() -> Iterator[None]:
    """Limit native thread pools to one thread, and MKL to one code path, in the workers spawned meanwhile."""
    saved = {name: os.environ.get(name) for name in (*THREAD_VARIABLES, *REPRODUCIBLE_MKL)}
    os.environ.update(dict.fromkeys(THREAD_VARIABLES, "1") | REPRODUCIBLE_MKL)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
