"""Build a family's data file: every config of its design trained on every task.

Run from the repository root::

    python -m benchmarks.build --family hgb [--tasks keel_iris sklearn_wine] [--jobs N]

Work is done per task, in worker processes (one thread each). A finished task is written
to a shard in ``benchmarks/.cache/<family>/`` and merged into
``benchmarks/data/<family>.parquet`` (temporary file + rename), so an interrupted build
continues where it stopped: tasks already in the family file are skipped, and a shard
that was written but not merged is merged without training again.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from rich.console import Console

from benchmarks._progress import Reporter, TaskReport, make_reporter
from benchmarks._store import (
    DesignMismatchError,
    check_design,
    completed_tasks,
    merge_into,
    read_table,
    schema_for,
)
from benchmarks._threads import one_thread_environment
from benchmarks._worker import init_worker, train_task
from benchmarks.design import DESIGN_SIZE, design_configs
from benchmarks.families import FAMILIES
from benchmarks.tasks import list_tasks

__all__ = ["Build", "Outcome", "main", "parse_args"]

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Build:
    """What one build trains and where it writes."""

    family: str
    configs: list[dict[str, Any]]
    schema: pa.Schema
    family_path: Path
    shard_dir: Path

    @classmethod
    def create(cls, family: str, n_configs: int, out: Path, cache_dir: Path) -> Build:
        """The build of ``family`` with the first ``n_configs`` configs of its design."""
        from autotweak.space import load_space

        configs = design_configs(family, n_configs)
        schema = schema_for(configs, load_space(family).names)
        return cls(family, configs, schema, out / f"{family}.parquet", cache_dir / family)

    def shard(self, task: str) -> Path:
        """The shard file of one task."""
        return self.shard_dir / f"{task}.parquet"


# -- command line -------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (``--n-configs`` and ``--cache-dir`` are for tests)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.build", description="Build the data file of an autotweak-bench family."
    )
    parser.add_argument("--family", required=True, choices=sorted(FAMILIES))
    parser.add_argument(
        "--tasks", nargs="+", metavar="TASK", help="tasks to build (default: all public tasks)"
    )
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: all CPUs)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="folder of <family>.parquet (default: benchmarks/data)"
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--n-configs", type=int, default=DESIGN_SIZE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be an integer >= 1, got --jobs {args.jobs}.")
    if not 1 <= args.n_configs <= DESIGN_SIZE:
        parser.error(f"--n-configs must be in 1..{DESIGN_SIZE}, got --n-configs {args.n_configs}.")
    known = list_tasks()
    unknown = [task for task in args.tasks or [] if task not in known]
    if unknown:
        parser.error(f"--tasks must name tasks of list_tasks() ({', '.join(known)}), got {unknown}.")
    if args.cache_dir is None:
        args.cache_dir = HERE / ".cache" if args.out is None else args.out / ".cache"
    args.out = args.out or HERE / "data"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run a build; returns the exit status (1 if a task failed)."""
    args = parse_args(argv)
    wall, cpu = time.perf_counter(), time.process_time()
    console = Console()
    reporter = make_reporter(console)
    build = Build.create(args.family, args.n_configs, args.out, args.cache_dir)
    try:
        todo = _pending_tasks(build, args.tasks or list_tasks(), reporter)
    except DesignMismatchError as exc:
        reporter.message(f"error: {exc}")
        return 2
    outcome = _run(build, todo, args.jobs, reporter) if todo else Outcome()
    cpu_total = sum(report.cpu_seconds for report in outcome.reports) + time.process_time() - cpu
    reporter.message(
        f"{build.family}: {len(outcome.reports)} task(s) trained, {len(outcome.failed)} failed "
        f"-> {build.family_path}; wall time {time.perf_counter() - wall:.1f} s, "
        f"CPU time {cpu_total:.1f} s (all processes)"
    )
    if outcome.interrupted:
        return 130
    return 1 if outcome.failed else 0


# -- resuming -----------------------------------------------------------------------------
def _pending_tasks(build: Build, tasks: Sequence[str], reporter: Reporter) -> list[str]:
    """Tasks still to train: those neither in the family file nor in a valid shard.

    Valid shards are merged into the family file first.
    """
    n_configs = len(build.configs)
    existing = read_table(build.family_path, build.schema)
    done = completed_tasks(existing, n_configs, build.family_path)
    check_design(existing, build.configs, build.family_path)
    skipped = [task for task in tasks if task in done]
    if skipped:
        reporter.message(f"{len(skipped)} task(s) already in {build.family_path}, skipped")
    pending = [task for task in tasks if task not in done]
    cached = {task: table for task in pending if (table := _valid_shard(build, task)) is not None}
    if cached:
        merge_into(build.family_path, cached.values(), build.schema)
        reporter.message(f"{len(cached)} finished shard(s) merged without training: {', '.join(cached)}")
    return [task for task in pending if task not in cached]


def _valid_shard(build: Build, task: str) -> pa.Table | None:
    """The shard of ``task`` if it holds exactly this build's configs for that task."""
    path = build.shard(task)
    try:
        table = read_table(path, build.schema)
        if table is None or completed_tasks(table, len(build.configs), path) != {task}:
            return None
        check_design(table, build.configs, path)
    except (DesignMismatchError, OSError, pa.ArrowException):
        return None
    return table


# -- running ------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What a build's workers did: the tasks trained and those that failed."""

    reports: list[TaskReport] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    interrupted: bool = False


def _run(build: Build, tasks: list[str], jobs: int, reporter: Reporter) -> Outcome:
    """Train ``tasks`` in a process pool; merge each into the family file when it is done."""
    outcome = Outcome()
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    reporter.start(tasks, len(build.configs))
    pool = None
    try:
        with one_thread_environment():
            pool = ProcessPoolExecutor(
                max_workers=min(jobs, len(tasks)),
                mp_context=context,
                initializer=init_worker,
                initargs=(events,),
            )
            futures = {
                pool.submit(
                    train_task, build.family, task, build.configs, build.schema, build.shard(task)
                ): task
                for task in tasks
            }
        _collect(futures, build, events, reporter, outcome)
    except KeyboardInterrupt:
        outcome.interrupted = True
        reporter.message("interrupted: finished tasks are kept; run the same command again to continue")
    finally:
        if pool is not None:
            # Every future is done unless something went wrong; then don't wait for running tasks.
            pool.shutdown(wait=False, cancel_futures=True)
        _drain(events, reporter)
        reporter.close()
    return outcome


def _collect(
    futures: Mapping[Future[TaskReport], str],
    build: Build,
    events: Any,
    reporter: Reporter,
    outcome: Outcome,
) -> None:
    """Wait for the tasks, relaying progress events and merging each finished shard."""
    pending = set(futures)
    while pending:
        finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
        _drain(events, reporter)
        for future in finished:
            task = futures[future]
            error = future.exception()
            if error is not None:
                outcome.failed.append(task)
                reporter.task_failed(task, f"{type(error).__name__}: {error}")
                continue
            merge_into(build.family_path, [_shard_table(build, task)], build.schema)
            outcome.reports.append(future.result())
            reporter.task_done(future.result())


def _shard_table(build: Build, task: str) -> pa.Table:
    table = read_table(build.shard(task), build.schema)
    if table is None:
        raise FileNotFoundError(f"the worker for {task} must have written {build.shard(task)}, got no file.")
    return table


def _drain(events: Any, reporter: Reporter) -> None:
    """Relay every queued ``(task, n_done)`` progress event."""
    while True:
        try:
            task, n_done = events.get_nowait()
        except (queue.Empty, OSError, ValueError):
            return
        reporter.config_done(task, n_done)


if __name__ == "__main__":
    sys.exit(main())
