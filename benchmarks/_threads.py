"""One thread per native thread pool in the worker processes a benchmark spawns.

Benchmarks run as many worker processes as there are cores. numpy's and scipy's OpenBLAS,
OpenMP (scikit-learn, torch) and MKL each start a thread per core by default, and they read
their limits when they load, which is before any code of ours runs in a spawned worker: the
limits must be in the environment the worker is spawned with.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["THREAD_VARIABLES", "one_thread_environment"]

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


@contextmanager
def one_thread_environment() -> Iterator[None]:
    """Limit native thread pools to one thread in the workers spawned meanwhile."""
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update(dict.fromkeys(THREAD_VARIABLES, "1"))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
