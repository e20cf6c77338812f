"""What runs in a build's worker processes.

This module imports neither ``autotweak`` nor ``benchmarks.build``: the parent computes
the design once and hands the configs over, so a long build does not depend on the
package staying importable while it runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from benchmarks._progress import TaskReport
from benchmarks._store import curves_table, write_atomic
from benchmarks.families import FAMILIES
from benchmarks.tasks import load_task

__all__ = ["init_worker", "train_task"]

_progress_queue: Any = None


def init_worker(events: Any) -> None:
    """Keep the progress queue (thread limits come from the environment the worker was spawned in)."""
    global _progress_queue
    _progress_queue = events


def train_task(
    family: str, task_name: str, configs: list[dict[str, Any]], schema: pa.Schema, shard: Path
) -> TaskReport:
    """Train every config on one task and write its shard; ``(task, n_done)`` is queued per config."""
    wall, cpu = time.perf_counter(), time.process_time()
    task = load_task(task_name)
    train = FAMILIES[family].train
    curves = []
    for n_done, config in enumerate(configs, start=1):
        curves.append(train(task, config))
        if _progress_queue is not None:
            _progress_queue.put((task_name, n_done))
    write_atomic(curves_table(task_name, configs, curves, schema), shard)
    return TaskReport(task_name, len(configs), time.perf_counter() - wall, time.process_time() - cpu)
