"""Meta-training splits and the histories meta-learners learn from.

Leave-one-task-out over the public tasks, with one refinement: some public tasks are the
same data under two names (``keel_iris`` / ``sklearn_iris``, ``keel_wine`` /
``sklearn_wine``, ``keel_wdbc`` / ``sklearn_breast_cancer``), and ``sklearn_digits`` is a
subset of the UCI optdigits data in ``keel_optdigits``. Training on a task's twin would be
training on the test task itself, so the whole group is left out when one of its members
is the test task. Files passed with ``--test-data`` are tested on after meta-training on
every public task.

Histories: ``dense`` gives every config of every training task; ``sparse`` gives only the
trials of one seeded TPE run of ``SPARSE_TRIALS`` trials per training task (seed from the
task's name), replayed through the same engine, as real histories are.

Example:
    >>> [split.train for split in leave_one_task_out(["keel_iris", "sklearn_iris", "keel_bupa"])]
    [['keel_iris', 'sklearn_iris'], ['keel_bupa'], ['keel_bupa']]
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from autotweak.spec import Component
from benchmarks.replay._base import History
from benchmarks.replay.data import FamilyData, TaskData
from benchmarks.replay.simulate import Design, Replay, run_study

__all__ = [
    "DUPLICATE_GROUPS",
    "REGIMES",
    "SPARSE_TRIALS",
    "Split",
    "dense_scores",
    "external_splits",
    "group_of",
    "history_for",
    "leave_one_task_out",
    "sparse_scores",
    "sparse_seed",
]

DUPLICATE_GROUPS: tuple[frozenset[str], ...] = (
    frozenset({"keel_iris", "sklearn_iris"}),
    frozenset({"keel_wine", "sklearn_wine"}),
    frozenset({"keel_wdbc", "sklearn_breast_cancer"}),
    frozenset({"keel_optdigits", "sklearn_digits"}),
)
REGIMES = ("dense", "sparse")
SPARSE_TRIALS = 30


@dataclass(frozen=True)
class Split:
    """One test task and the tasks a meta-learner may train on for it."""

    test: str
    train: list[str]


def group_of(task: str) -> frozenset[str]:
    """The task's duplicate group (just the task when it has no twin)."""
    return next((group for group in DUPLICATE_GROUPS if task in group), frozenset({task}))


def leave_one_task_out(public: Iterable[str]) -> list[Split]:
    """For each public task, training on the other public tasks outside its group."""
    tasks = sorted(public)
    return [Split(test, [t for t in tasks if t not in group_of(test)]) for test in tasks]


def external_splits(public: Iterable[str], external: Iterable[str]) -> list[Split]:
    """Each external task trained on every public task."""
    train = sorted(public)
    return [Split(test, list(train)) for test in sorted(external)]


# -- histories ----------------------------------------------------------------------------
def dense_scores(task: TaskData) -> dict[int, float]:
    """Every config's final validation score."""
    return {int(cid): float(v) for cid, v in zip(task.config_ids, task.final_val, strict=True)}


def sparse_seed(task: str) -> int:
    """The seed of a task's sparse-history run: stable across processes and runs."""
    return zlib.crc32(task.encode()) % 2**31


def sparse_scores(family: FamilyData, task: str, trials: int = SPARSE_TRIALS) -> dict[int, float]:
    """Final validation scores of one seeded TPE run of ``trials`` trials on ``task``."""
    data = family.tasks[task]
    replay = Replay(data, Design(family.space, data.params))
    run = run_study(replay, family.space, seed=sparse_seed(task), budget=trials, sampler=Component("tpe"))
    return {trial.config_id: trial.val for trial in run}


def history_for(
    split: Split,
    regime: str,
    family: FamilyData,
    scores: Mapping[str, Mapping[int, float]],
    *,
    curves: bool = False,
) -> History:
    """The history of ``split``'s training tasks only, from ``scores`` (task -> observed scores).

    Only the training tasks' entries are read, so nothing of the test task can leak in.
    With ``curves``, the validation curves of the observed configs come along.
    """
    if regime not in REGIMES:
        raise ValueError(f"a regime must be one of {', '.join(REGIMES)}, got {regime!r}.")
    kept = {task: dict(scores[task]) for task in split.train}
    used = {cid for observed in kept.values() for cid in observed}
    configs = {cid: dict(family.configs[cid]) for cid in sorted(used)}
    if not curves:
        return History(regime, configs, kept)
    return History(regime, configs, kept, {task: _curves(family.tasks[task], kept[task]) for task in kept})


def _curves(task: TaskData, observed: Mapping[int, float]) -> dict[int, tuple[float, ...]]:
    rows = {int(cid): row for row, cid in enumerate(task.config_ids)}
    return {cid: tuple(float(v) for v in task.val[rows[cid]]) for cid in sorted(observed)}


def all_scores(family: FamilyData, regime: str, tasks: Sequence[str]) -> dict[str, dict[int, float]]:
    """Observed scores of ``tasks`` under ``regime`` (sequentially; the runner parallelizes)."""
    if regime == "dense":
        return {task: dense_scores(family.tasks[task]) for task in tasks}
    return {task: sparse_scores(family, task) for task in tasks}
