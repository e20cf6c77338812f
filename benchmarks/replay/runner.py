"""Plan and run a comparison: one job per (suite, test task, method, regime), seeds inside.

A *suite* is a set of test tasks of one data file with the tasks meta-learners may train
on: the public tasks of a family (leave-one-task-out), or an external file's tasks
(meta-training on every public task of the same library family). Jobs run in worker
processes that read the data files themselves; results come back sorted, so the numbers
do not depend on the number of processes or the order jobs finish in.

Example:
    >>> suites = [public_suite(read_family("benchmarks/data/hgb.parquet"))]  # doctest: +SKIP
    >>> runs = run_comparison(suites, ["tpe"], seeds=(0, 1), budget=50, regimes=())  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from benchmarks._threads import one_thread_environment
from benchmarks.replay._base import History, SearchSetup
from benchmarks.replay.data import FamilyData, read_family
from benchmarks.replay.methods import METHODS
from benchmarks.replay.metrics import TaskStats
from benchmarks.replay.simulate import Design, Replay, ReplayTrial, quiet
from benchmarks.replay.splits import (
    Split,
    dense_scores,
    external_splits,
    history_for,
    leave_one_task_out,
    sparse_scores,
)

__all__ = [
    "DEFAULT_TEST_TASKS",
    "Job",
    "Run",
    "Suite",
    "default_test_tasks",
    "external_suite",
    "public_suite",
    "run_comparison",
    "run_job",
]

T = TypeVar("T")
R = TypeVar("R")
Scores = dict[str, dict[int, float]]
DEFAULT_TEST_TASKS = 5


@dataclass(frozen=True)
class Suite:
    """Test tasks of one data file, each with the tasks it may be meta-trained on.

    Attributes:
        key: The suite's name in the results (the family, or the external file's name).
        family: The data of the test tasks.
        splits: Test task -> training tasks.
        train_family: Where training tasks come from; ``None`` when no public family
            shares the file's search space (meta-learners are then skipped).
    """

    key: str
    family: FamilyData
    splits: list[Split]
    train_family: FamilyData | None


def public_suite(family: FamilyData, tasks: Iterable[str] | None = None) -> Suite:
    """Leave-one-task-out over ``family``'s tasks, testing on ``tasks`` (default: all)."""
    wanted = set(family.tasks if tasks is None else tasks)
    splits = [split for split in leave_one_task_out(family.tasks) if split.test in wanted]
    return Suite(family.name, family, splits, family)


def external_suite(family: FamilyData, public: Mapping[str, FamilyData]) -> Suite:
    """Every task of an external file, meta-trained on the public family of its space."""
    train = public.get(family.library_family or "")
    splits = external_splits(train.tasks if train else [], family.tasks)
    return Suite(family.path.name, family, splits, train)


def default_test_tasks(family: FamilyData, per_family: int = DEFAULT_TEST_TASKS) -> list[str]:
    """The default comparison's test tasks: ``per_family`` non-saturated tasks, evenly spaced.

    Every baseline on every task takes well over an hour on 2 cores (Optuna's ``GPSampler``
    alone ~9 s of CPU per 50-trial run), so the default run tests on a fixed subset and
    ``--tasks all`` on everything. The pick depends on the data only (alphabetical order of
    the tasks that are not saturated), never on how any method scored. A family of at most
    ``per_family`` tasks is tested on all of them.
    """
    if len(family.tasks) <= per_family:
        return sorted(family.tasks)
    names = sorted(t for t, data in family.tasks.items() if not TaskStats.of(data).saturated)
    if len(names) <= per_family:
        return names
    return [names[int((i + 0.5) * len(names) / per_family)] for i in range(per_family)]


@dataclass(frozen=True)
class Job:
    """One method on one test task, for several seeds."""

    suite: str
    path: str
    task: str
    method: str
    seeds: tuple[int, ...]
    budget: int
    regime: str | None = None
    history: History | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """The method's name in the results: ``greedy_portfolio[sparse]`` for a regime."""
        return self.method if self.regime is None else f"{self.method}[{self.regime}]"


@dataclass(frozen=True)
class Run:
    """One seed of one method on one test task: its trials, in order."""

    suite: str
    task: str
    method: str
    seed: int
    trials: tuple[ReplayTrial, ...]
    cpu_seconds: float = field(default=0.0, compare=False)  # the search's CPU time, fits included


def run_job(job: Job, family: FamilyData) -> list[Run]:
    """Run ``job`` on ``family``'s data, one fresh replay per seed."""
    task = family.tasks[job.task]
    design = Design(family.space, task.params)
    runs = []
    for seed in job.seeds:
        replay = Replay(task, design)
        setup = SearchSetup(family.space, seed, job.budget, job.history)
        started = time.process_time()
        with quiet():
            METHODS[job.method]().search(replay, setup)
        cpu = time.process_time() - started
        runs.append(Run(job.suite, job.task, job.label, seed, tuple(replay.trials), cpu))
    return runs


# -- planning -----------------------------------------------------------------------------
def plan_jobs(
    suites: Sequence[Suite],
    methods: Sequence[str],
    seeds: Sequence[int],
    budget: int,
    histories: Mapping[tuple[str, str], Scores],
) -> list[Job]:
    """Every job of the comparison; ``histories[(train family path, regime)]`` feeds meta-learners."""
    jobs = []
    regimes = sorted({regime for _, regime in histories})
    for suite in suites:
        path = str(suite.family.path)
        for split in suite.splits:
            for method in methods:
                base = Job(suite.key, path, split.test, method, tuple(seeds), budget)
                if not uses_history(method):
                    jobs.append(base)
                    continue
                if suite.train_family is None:
                    continue
                for regime in regimes:
                    scores = histories[(str(suite.train_family.path), regime)]
                    curves = METHODS[method]().uses_curves
                    history = history_for(split, regime, suite.train_family, scores, curves=curves)
                    jobs.append(Job(**{**vars(base), "regime": regime, "history": history}))
    return jobs


def uses_history(method: str) -> bool:
    """Whether ``method`` learns from past tasks."""
    return METHODS[method]().uses_history


def needs_history(methods: Sequence[str]) -> bool:
    """Whether any of ``methods`` learns from past tasks."""
    return any(uses_history(m) for m in methods)


# -- running ------------------------------------------------------------------------------
_FAMILIES: dict[str, FamilyData] = {}


def _family(path: str) -> FamilyData:
    """The family of ``path``, read once per process."""
    if path not in _FAMILIES:
        _FAMILIES[path] = read_family(path)
    return _FAMILIES[path]


def _init_worker(families: Mapping[str, FamilyData] | None) -> None:
    if families:
        _FAMILIES.update(families)


def _run_job(job: Job) -> list[Run]:
    return run_job(job, _family(job.path))


def _sparse(item: tuple[str, str]) -> tuple[str, dict[int, float]]:
    path, task = item
    with quiet():
        return task, sparse_scores(_family(path), task)


def collect_histories(
    suites: Sequence[Suite], regimes: Sequence[str], pool: Pool
) -> dict[tuple[str, str], Scores]:
    """Observed scores of every training task, per (training family path, regime)."""
    families = {str(s.train_family.path): s.train_family for s in suites if s.train_family is not None}
    histories: dict[tuple[str, str], Scores] = {}
    for path, family in sorted(families.items()):
        if "dense" in regimes:
            histories[(path, "dense")] = {t: dense_scores(family.tasks[t]) for t in family.tasks}
        if "sparse" in regimes:
            items = [(path, task) for task in family.tasks]
            histories[(path, "sparse")] = dict(pool.map(_sparse, items))
    return histories


class Pool:
    """``map`` in worker processes (or in this process for one), results in input order.

    Args:
        processes: Worker processes; 1 runs everything here.
        families: Families already read, handed to the workers so they need not read them.
    """

    def __init__(self, processes: int, families: Mapping[str, FamilyData] | None = None) -> None:
        self.processes = processes
        _init_worker(families)
        self._executor = None
        self._threads = contextlib.ExitStack()
        if processes > 1:
            # Set while workers may be spawned: Optuna's GPSampler in two workers of two
            # threads each took 2.6x the CPU of one thread each.
            self._threads.enter_context(one_thread_environment())
            self._executor = ProcessPoolExecutor(
                max_workers=processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(None,),
            )

    def map(
        self, fn: Callable[[T], R], items: Sequence[T], on_done: Callable[[int], None] | None = None
    ) -> list[R]:
        """``[fn(item) for item in items]``, calling ``on_done(n_done)`` as items finish."""
        if self._executor is None:
            results = []
            for item in items:
                results.append(fn(item))
                if on_done:
                    on_done(len(results))
            return results
        futures = [self._executor.submit(fn, item) for item in items]
        for done, future in enumerate(futures, start=1):
            future.result()
            if on_done:
                on_done(done)
        return [future.result() for future in futures]

    def close(self) -> None:
        """Stop the workers."""
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)
        self._threads.close()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_comparison(
    suites: Sequence[Suite],
    methods: Sequence[str],
    *,
    seeds: Sequence[int],
    budget: int,
    regimes: Sequence[str],
    processes: int = 1,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> list[Run]:
    """Run every method on every suite's test tasks; runs sorted by (suite, task, method, seed).

    Args:
        suites: What to test on.
        methods: Names in ``METHODS``.
        seeds: Seeds of each (method, task).
        budget: Trials per run.
        regimes: History regimes for meta-learners (``dense``, ``sparse``).
        processes: Worker processes.
        on_progress: Called with ``(phase, done, total)``.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"methods must be names of METHODS ({', '.join(METHODS)}), got {unknown}.")
    families = {str(s.family.path): s.family for s in suites}
    families |= {str(s.train_family.path): s.train_family for s in suites if s.train_family}
    with Pool(processes, families if processes == 1 else None) as pool:
        wanted = regimes if needs_history(methods) else ()
        histories = collect_histories(suites, wanted, pool)
        jobs = plan_jobs(suites, methods, seeds, budget, histories)
        report = (lambda done: on_progress("runs", done, len(jobs))) if on_progress else None
        results = pool.map(_run_job, jobs, report)
    runs = [run for batch in results for run in batch]
    return sorted(runs, key=lambda r: (r.suite, r.task, r.method, r.seed))


def default_processes() -> int:
    """Two, or fewer CPUs if the machine has fewer."""
    return min(2, os.cpu_count() or 1)


def data_path(directory: Path, family: str) -> Path:
    """Where a public family's data file lives."""
    return directory / f"{family}.parquet"
