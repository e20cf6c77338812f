"""Greedy zero-shot portfolio (auto-sklearn 2.0 style), built from past tasks only.

Each past task's observed scores are turned into normalized regrets,
``(best - score) / (best - median)`` over the configs observed on that task. The portfolio
starts empty and adds, one at a time, the config that most lowers the mean over past
tasks of the best regret reached by the portfolio so far (ties: the lower ``config_id``).
Candidates are the configs observed on at least one past task. In a sparse history a
candidate was not run on most past tasks; there it takes the regret of the nearest config
that was (in the unit cube of the space), a 1-nearest-neighbour surrogate. Past tasks
whose observed best and median differ by less than 0.01 say nothing about which config is
better and are left out.

Example:
    >>> from autotweak import SearchSpace
    >>> space = SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0}})
    >>> configs = {0: {"x": 0.0}, 1: {"x": 0.5}, 2: {"x": 1.0}}
    >>> scores = {"a": {0: 1.0, 1: 0.5, 2: 0.0}, "b": {0: 0.0, 1: 0.5, 2: 1.0}}
    >>> greedy_portfolio(History("dense", configs, scores), 5, space)
    [0, 2]
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from autotweak import SearchSpace
from benchmarks.replay._base import History
from benchmarks.replay.simulate import Design

__all__ = ["MIN_SPREAD", "greedy_portfolio", "regret_matrix"]

MIN_SPREAD = 0.01


def regret_matrix(history: History, space: SearchSpace) -> tuple[NDArray[np.float64], list[int]]:
    """Normalized regrets ``(past tasks, candidate configs)`` and the candidates' ids.

    Candidates are every config observed on at least one past task, by increasing id; a
    candidate not observed on a task gets the regret of its nearest observed neighbour.
    """
    candidates = sorted({cid for scores in history.scores.values() for cid in scores})
    column = {cid: j for j, cid in enumerate(candidates)}
    units = Design(space, [history.configs[cid] for cid in candidates]).units
    rows: list[NDArray[np.float64]] = []
    for task in history.tasks:
        scores = history.scores[task]
        values = np.array(list(scores.values()), dtype=np.float64)
        best, median = float(values.max()), float(np.median(values))
        if best - median < MIN_SPREAD:
            continue
        observed = np.array([column[cid] for cid in scores])
        distance = np.sum((units[:, None, :] - units[None, observed, :]) ** 2, axis=2)
        regrets = (best - values) / (best - median)
        rows.append(regrets[np.argmin(distance, axis=1)])
    matrix = np.array(rows, dtype=np.float64).reshape(len(rows), len(candidates))
    return matrix, candidates


def greedy_portfolio(history: History, size: int, space: SearchSpace) -> list[int]:
    """Up to ``size`` config ids, in the order they were picked.

    Stops early when no candidate lowers the mean best regret any more.
    """
    regrets, candidates = regret_matrix(history, space)
    if regrets.size == 0:
        return []
    best = regrets.max(axis=1)
    chosen: list[int] = []
    taken = np.zeros(len(candidates), dtype=bool)
    while len(chosen) < size and not taken.all():
        means = np.minimum(regrets, best[:, None]).mean(axis=0)
        means[taken] = np.inf
        pick = int(np.argmin(means))
        if chosen and means[pick] >= best.mean():
            break
        chosen.append(candidates[pick])
        taken[pick] = True
        best = np.minimum(best, regrets[:, pick])
    return chosen
