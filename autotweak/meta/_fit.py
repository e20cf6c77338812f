"""Fit a :class:`MetaModel` from past histories.

Each past task's complete trials are turned into normalized scores, the rank quantile of
each trial among the task's trials (0 = worst, 1 = best). Ranks make tasks comparable
whatever their metric, scale or direction, and a few disastrous configs do not dominate.
A per-task surrogate (extremely randomized trees on the unit cube of the space) then
predicts that task's normalized score for every candidate config; where the task ran the
candidate itself, its own rank is kept, and the model marks that score measured (the rest
predicted: see ``MetaModel.measured``). Candidates are every config seen in the histories
plus a scrambled Sobol design of the space, so sparse histories (few, different configs
per task) still give every task a prediction for every candidate.

Example:
    >>> from autotweak import SearchSpace
    >>> from autotweak.meta import Histories, PastTrial, TaskHistory
    >>> space = SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0}})
    >>> trials = tuple(PastTrial({"x": x / 9}, value=-abs(x / 9 - 0.3)) for x in range(10))
    >>> model = fit_meta_model(Histories((TaskHistory("a", "maximize", trials),)), space, n_design=8)
    >>> round(model.candidate(int(model.scores[0].argmax()))["x"], 2)
    0.33
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from autotweak.meta._histories import Histories, PastTrial, SkipReport, TaskHistory, ValueReason, as_space
from autotweak.meta._mapping import ParamMapper
from autotweak.meta._model import MetaModel, MetaModelError
from autotweak.space import SearchSpace

if TYPE_CHECKING:  # scikit-learn is imported when a model is fitted, not when one is served
    from sklearn.ensemble import ExtraTreesRegressor

__all__ = ["check_unconditional", "fit_meta_model", "normalized_scores", "unit_points"]

_log = logging.getLogger(__name__)

MIN_TRIALS = 5
N_TREES = 32
SURROGATE = "extra-trees"
# Offset of the candidate design's seed: not the designs seeded 0 (e.g. the benchmark's).
DESIGN_SEED = 1_000


def unit_points(space: SearchSpace, configs: Sequence[Mapping[str, Any]]) -> NDArray[np.float64]:
    """Configs as ``(n, n_tunable)`` unit-cube points; an inactive parameter sits at 0.5."""
    rows = [[0.5 if u is None else u for u in space.to_unit(config)] for config in configs]
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(space.tunable))


def normalized_scores(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rank quantiles of ``values`` (higher is better): 0 for the worst, 1 for the best.

    Example:
        >>> normalized_scores(np.array([0.5, 0.9, 0.7])).tolist()
        [0.0, 1.0, 0.5]
    """
    if len(values) < 2:
        return np.ones_like(values)
    from scipy.stats import rankdata  # a second to import: `meta fit` needs it, a study's start does not

    ranks = rankdata(values, method="average")
    return np.asarray((ranks - 1.0) / (len(values) - 1.0), dtype=np.float64)


def fit_meta_model(
    histories: Histories,
    space: SearchSpace | str | os.PathLike[str],
    *,
    n_design: int = 256,
    min_trials: int = MIN_TRIALS,
    seed: int = 0,
) -> MetaModel:
    """Fit the meta-model of ``space`` on ``histories``.

    Each trial's params are mapped onto ``space`` by the readers' rules
    (:class:`~autotweak.meta.ParamMapper`): histories read for this space map to themselves,
    and a trial that does not fit (a param missing or out of range, hand-built or read for
    another space) or whose value is not a finite number is left out and counted in
    ``info["skipped_records"]``, as a reader would.

    Args:
        histories: Past tasks, best read for ``space`` (the loaders of :mod:`autotweak.meta`).
        space: The search space to propose in, or a library space name or space file.
        n_design: Size of the Sobol design added to the configs seen in the histories.
        min_trials: Tasks with fewer complete trials (or with all trials scoring the same)
            are left out and counted in ``info["skipped_tasks"]``.
        seed: Seed of the design and of the per-task surrogates.

    Raises:
        MetaModelError: If an argument breaks its rule, no trial fits the space, or no
            task is left to learn from.
    """
    _check_arguments(histories, {"n_design": n_design, "min_trials": min_trials, "seed": seed})
    space = as_space(space, MetaModelError)
    check_unconditional(space)
    tasks, left_out = _fitting(histories, space)
    records = histories.skipped.merge(left_out)
    usable, skipped = _usable(tasks, space, min_trials)
    if not usable:
        raise MetaModelError(
            f"no past task has at least {min_trials} complete trials with different scores "
            f"({len(histories.tasks)} task(s) read; reading them: {records.summary()})."
        )
    _say_constant(space, [task.complete_trials() for task, _, _ in usable], records)
    units = _candidates(space, [x for _, x, _ in usable], n_design, seed)
    rows = [_predict(x, y, units, seed) for _, x, y in usable]
    scores = np.vstack([row for row, _ in rows])
    info = {
        "n_tasks": len(usable),
        "n_trials": int(sum(len(y) for _, _, y in usable)),
        "n_candidates": len(units),
        "skipped_tasks": skipped.summary("task"),
        "skipped_records": records.summary(),
        "sources": sorted({task.source for task, _, _ in usable if task.source}),
        "settings": {"n_design": n_design, "min_trials": min_trials, "seed": seed, "surrogate": SURROGATE},
    }
    _log.info(
        "meta-model fit on %d task(s), %d candidates (%s)", len(usable), len(units), skipped.summary("task")
    )
    return MetaModel(
        space=space,
        tasks=tuple(task.name for task, _, _ in usable),
        descriptors=tuple(dict(task.descriptor) for task, _, _ in usable),
        units=units,
        scores=scores,
        n_trials=np.array([len(y) for _, _, y in usable], dtype=np.int64),
        info=info,
        measured=np.vstack([ran for _, ran in rows]),
    )


def _usable(
    tasks: Sequence[TaskHistory], space: SearchSpace, min_trials: int
) -> tuple[list[tuple[TaskHistory, NDArray[np.float64], NDArray[np.float64]]], SkipReport]:
    """The tasks to learn from, with their complete trials' unit points and normalized scores.

    A task with fewer than ``min_trials`` complete trials, or whose trials all scored the same,
    is left out and counted in the report returned with them.
    """
    skipped = SkipReport()
    usable: list[tuple[TaskHistory, NDArray[np.float64], NDArray[np.float64]]] = []
    for task in tasks:
        complete = task.complete_trials()
        values = task.scores()
        if len(complete) < min_trials:
            skipped.add(f"fewer than {min_trials} complete trials", task.name)
        elif float(np.ptp(values)) == 0.0:
            skipped.add("all trials scored the same", task.name)
        else:
            usable.append((task, unit_points(space, [t.params for t in complete]), normalized_scores(values)))
    return usable, skipped


# Integer arguments of fit_meta_model and their smallest allowed value.
_INTEGERS = {"n_design": 0, "min_trials": 1, "seed": 0}


def check_unconditional(space: SearchSpace) -> None:
    """Refuse a space with conditional parameters, which the meta-learner cannot serve.

    ``autotweak meta fit`` asks before it reads any history.

    Raises:
        MetaModelError: If a parameter of ``space`` has a ``when`` condition, naming them.

    Example:
        >>> space = SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0}})
        >>> check_unconditional(space) is None
        True
    """
    conditional = [f"{p.name} (when: {p.when.to_dict()})" for p in space.params if p.when is not None]
    if conditional:
        named = repr(space.name) if space.name else "a space"
        raise MetaModelError(
            f"the meta-learner needs a space without conditional parameters, got {named} "
            f"with {', '.join(conditional)} (optimize runs plain TPE there)."
        )


def _check_arguments(histories: Any, integers: Mapping[str, Any]) -> None:
    if not isinstance(histories, Histories):
        raise MetaModelError(
            "'histories' of fit_meta_model must be Histories (from read_table, read_mlflow, read_optuna "
            f"or Histories(tasks=...)), got {type(histories).__name__} {histories!r:.80}."
        )
    for name, value in integers.items():
        low = _INTEGERS[name]
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise MetaModelError(
                f"'{name}' of fit_meta_model must be an integer >= {low}, got {name}={value!r}."
            )


def _fitting(histories: Histories, space: SearchSpace) -> tuple[list[TaskHistory], SkipReport]:
    """Each task with its trials mapped onto ``space``; the trials left out, counted by reason."""
    mapper = ParamMapper(space)
    left_out = SkipReport()
    tasks = []
    for task in histories.tasks:
        kept = []
        for trial in task.trials:
            where = trial.source or f"task {task.name!r}"
            if not _finite(trial.value):
                left_out.add(ValueReason("the trial's value", trial.value, "is not a finite number"), where)
                continue
            if not isinstance(trial.params, Mapping):
                left_out.add("the trial's params must be a mapping of names to values", where)
                continue
            config, reason = mapper.map(trial.params)
            if config is None:
                left_out.add(reason or "the trial's params do not fit the space", where)
            else:
                kept.append(replace(trial, params=config))
        tasks.append(replace(task, trials=tuple(kept)))
    left_out.note_all(mapper.notes)
    n_trials = histories.n_trials
    if n_trials and left_out.total == n_trials:
        raise MetaModelError(
            f"the histories must hold trials with a finite value and params that fit the space "
            f"{space.name!r} ({', '.join(space.names)}), got none of {n_trials}: {left_out.summary()}."
        )
    if left_out.total:
        _log.warning("meta-model fit: trials that do not fit the space are left out: %s", left_out.summary())
    return tasks, left_out


def _say_constant(space: SearchSpace, trials: Sequence[Sequence[PastTrial]], records: SkipReport) -> None:
    """Warn of each parameter that has one value in every trial learned from: the model learns nothing of it.

    Most often the histories recorded it under another name, and the base config (a spec's)
    filled it into every record: the reading's notes then name the rename it may need.
    """
    every = [trial.params for task in trials for trial in task]
    for param in space.tunable:
        values = {repr(params[param.name]) for params in every}
        if len(every) < 2 or len(values) > 1:
            continue
        filled = records.notes.get(f"param {param.name!r} filled from the base config", 0)
        why = (
            f"; the base config filled it in ({filled} records): if the histories recorded it under "
            "another name, rename it (the reading's notes name the likely one)"
            if filled
            else ""
        )
        _log.warning(
            "meta-model fit: param %r has the one value %s in all %d trials learned from, so the model "
            "learns nothing of it%s",
            param.name,
            values.pop(),
            len(every),
            why,
        )


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(value)
    except TypeError:
        return False


def _candidates(
    space: SearchSpace, seen: list[NDArray[np.float64]], n_design: int, seed: int
) -> NDArray[np.float64]:
    """Seen configs and a Sobol design, canonical (through the space's mapping), deduplicated."""
    from scipy.stats import qmc

    dims = len(space.tunable)
    design = (
        qmc.Sobol(dims, scramble=True, seed=seed + DESIGN_SEED).random(n_design)
        if n_design
        else np.empty((0, dims))
    )
    raw = np.vstack([*seen, design])
    canonical = unit_points(space, [space.from_unit(row.tolist()) for row in raw])
    _, first = np.unique(np.round(canonical, 9), axis=0, return_index=True)
    return np.asarray(canonical[np.sort(first)], dtype=np.float64)


def _predict(
    x: NDArray[np.float64], y: NDArray[np.float64], units: NDArray[np.float64], seed: int
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """One task's normalized score at every candidate: its own where it ran it, else the surrogate's.

    Returns:
        The scores, and which of them the task measured (ran the candidate).
    """
    predicted = np.clip(_fitted(x.tobytes(), y.tobytes(), x.shape[1], seed).predict(units), 0.0, 1.0)
    out = np.array(predicted, dtype=np.float64)
    measured = np.zeros(len(units), dtype=np.bool_)
    for row, trial in _exact_matches(units, x):
        out[row] = y[trial]
        measured[row] = True
    return out, measured


def _exact_matches(units: NDArray[np.float64], x: NDArray[np.float64]) -> list[tuple[int, int]]:
    """``(candidate, trial)`` pairs where a candidate is a config the task ran (the first such trial).

    Both sides went through the space's mapping, so a config the task ran is the same point
    up to rounding: points are matched on a 1e-9 grid (a hash lookup, not all pairs).
    """
    first: dict[bytes, int] = {}
    for i, row in enumerate(_grid(x)):
        first.setdefault(row.tobytes(), i)
    keys = _grid(units)
    return [(j, first[key.tobytes()]) for j, key in enumerate(keys) if key.tobytes() in first]


def _grid(points: NDArray[np.float64]) -> NDArray[np.int64]:
    return np.asarray(np.rint(points * 1e9), dtype=np.int64)


def _fitted(x_bytes: bytes, y_bytes: bytes, dims: int, seed: int) -> ExtraTreesRegressor:
    """One task's surrogate, cached: leave-one-task-out refits the same tasks again and again."""

    def fit() -> ExtraTreesRegressor:
        from sklearn.ensemble import ExtraTreesRegressor

        x = np.frombuffer(x_bytes, dtype=np.float64).reshape(-1, dims)
        y = np.frombuffer(y_bytes, dtype=np.float64)
        model = ExtraTreesRegressor(n_estimators=N_TREES, min_samples_leaf=2, random_state=seed, n_jobs=1)
        return model.fit(x, y)

    digest = hashlib.blake2b(x_bytes + y_bytes, digest_size=16).digest()  # the key, not the data, is kept
    return _FORESTS.get((digest, len(x_bytes), dims, seed), fit)


class _ForestCache:
    """Fitted surrogates by their training data, the least recently used dropped past a memory budget.

    A forest's size grows with its task's trials (about 0.15 MB at 64, 0.6 MB at 300), so
    the budget is in bytes, estimated from the trees' node counts, not in forests.
    """

    PER_FOREST = 40_000  # the estimators' Python objects
    PER_NODE = 80  # a node of a fitted tree (struct and value)

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._forests: OrderedDict[Hashable, tuple[ExtraTreesRegressor, int]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """The estimated bytes held."""
        return self._size

    def __len__(self) -> int:
        return len(self._forests)

    def clear(self) -> None:
        """Drop every forest kept."""
        with self._lock:
            self._forests.clear()
            self._size = 0

    def get(self, key: Hashable, fit: Callable[[], ExtraTreesRegressor]) -> ExtraTreesRegressor:
        """The forest under ``key``; when absent, fitted by ``fit`` and kept if it fits the budget."""
        with self._lock:
            if key in self._forests:
                self._forests.move_to_end(key)
                return self._forests[key][0]
        forest = fit()
        size = self.PER_FOREST + self.PER_NODE * sum(tree.tree_.node_count for tree in forest.estimators_)
        with self._lock:
            if key not in self._forests and size <= self.budget:
                self._forests[key] = (forest, size)
                self._size += size
                while self._size > self.budget:
                    _, (_, dropped) = self._forests.popitem(last=False)
                    self._size -= dropped
        return forest


_FORESTS = _ForestCache(budget=128 * 2**20)
