"""Proposals from a meta-model for a new task, refined by the task's own first results.

One rule covers the zero-shot portfolio and the adaptive phase. Each past task ``t``
carries a regret ``1 - scores[t, c]`` for every candidate ``c``; the configs already
tried on the new task have reached, on task ``t``, the best regret ``r_t`` among them.
The next proposal is the untried candidate that most lowers the weighted mean over past
tasks of ``min(r_t, 1 - scores[t, c])`` (auto-sklearn 2.0's greedy portfolio, with
weights). Before any result, the weights are the prior: uniform, or from the similarity
of task descriptors. Once the new task has two results, a past task's weight grows with
how well it ranks them (the fraction of pairs it orders as the new task did), so the
proposals follow the past tasks that behave like this one.

The negative-transfer guard compares the prior's ranking of the new task's results with
their actual order (Kendall's tau); below a threshold, the prior is judged wrong for this
task and the caller falls back to its cold sampler.

Example:
    >>> import numpy as np
    >>> from autotweak import SearchSpace
    >>> from autotweak.meta._model import MetaModel
    >>> space = SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0}})
    >>> units = np.array([[0.0], [0.5], [1.0]])
    >>> scores = np.array([[1.0, 0.5, 0.0], [0.0, 0.5, 1.0]])
    >>> model = MetaModel(space, ("a", "b"), ({}, {}), units, scores, np.array([3, 3]))
    >>> proposer = Proposer(model)
    >>> [proposer.propose([], []).index, proposer.propose([[0.0]], [0.9]).index]
    [0, 2]
    >>> proposer.propose([[0.0], [1.0]], [0.9, 0.1]).index  # the bests tried: the next best
    1
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from autotweak._validation import is_number
from autotweak.meta._model import MetaModel

__all__ = ["Proposal", "Proposer", "Source", "descriptor_weights"]

TEMPERATURE = 0.1
N_SOURCES = 3
PRIOR_FLOOR = 0.1  # a past task's prior weight relative to the largest, at least

_log = logging.getLogger(__name__)


class Source(NamedTuple):
    """A past task a proposal comes from.

    Attributes:
        task: The past task's name.
        similarity: Its weight relative to the most similar task's.
        score: The config's normalized score on it.
        measured: Whether that score is the task's own (it ran the config), ``False`` if
            the task's surrogate predicted it, ``None`` if the meta-model does not say.
    """

    task: str
    similarity: float
    score: float
    measured: bool | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``measured`` is ``null`` when unknown)."""
        return {
            "task": self.task,
            "similarity": round(self.similarity, 4),
            "score": round(self.score, 4),
            "measured": self.measured,
        }


@dataclass(frozen=True)
class Proposal:
    """One proposed config and why.

    Attributes:
        index: The candidate's row in the meta-model.
        params: The config.
        predicted: Predicted normalized score (fraction of configs it beats), weighted
            over past tasks.
        uncertainty: Weighted standard deviation of that prediction across past tasks;
            ``None`` with a single past task (no spread to measure).
        sources: The past tasks it comes from (:class:`Source`), most supportive first:
            the task's weight relative to the most similar task's, the config's normalized
            score on that task, and whether the task measured that score or the surrogate
            predicted it.
    """

    index: int
    params: Mapping[str, Any]
    predicted: float
    uncertainty: float | None
    sources: tuple[Source, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the shape stored on trials and parent runs)."""
        return {
            "params": dict(self.params),
            "predicted": round(self.predicted, 4),
            "uncertainty": None if self.uncertainty is None else round(self.uncertainty, 4),
            "sources": [source.to_dict() for source in self.sources],
        }


class Proposer:
    """Proposals for one new task from a meta-model.

    Args:
        model: The fitted meta-model.
        prior: Weight of each past task before any result (uniform if ``None``), e.g.
            from :func:`descriptor_weights`.
        temperature: How sharply agreement with the new task's results concentrates the
            weights (smaller: on fewer past tasks).
    """

    def __init__(
        self, model: MetaModel, prior: NDArray[np.float64] | None = None, temperature: float = TEMPERATURE
    ) -> None:
        self.model = model
        weights = np.ones(model.n_tasks) if prior is None else np.asarray(prior, dtype=np.float64)
        self.prior = weights / weights.sum()
        self.temperature = temperature
        self._regret = 1.0 - model.scores

    def nearest(self, units: Sequence[Sequence[float]]) -> NDArray[np.int64]:
        """The candidate nearest each unit point (Euclidean in the unit cube)."""
        points = np.asarray(units, dtype=np.float64).reshape(-1, self.model.units.shape[1])
        if len(points) == 0:
            return np.empty(0, dtype=np.int64)
        distance = ((points[:, None, :] - self.model.units[None, :, :]) ** 2).sum(axis=2)
        return np.asarray(distance.argmin(axis=1), dtype=np.int64)

    def agreement(self, observed: NDArray[np.int64], values: Sequence[float]) -> NDArray[np.float64]:
        """Per past task, the fraction of the new task's result pairs it orders the same way."""
        y = np.asarray(values, dtype=np.float64)
        new = np.sign(y[:, None] - y[None, :])
        pairs = new != 0
        if not pairs.any():
            return np.full(self.model.n_tasks, 0.5)
        past = self.model.scores[:, observed]
        order = np.sign(past[:, :, None] - past[:, None, :])
        same = ((order == new[None]) & pairs[None]).sum(axis=(1, 2))
        return np.asarray(same / pairs.sum(), dtype=np.float64)

    def weights(self, observed: NDArray[np.int64], values: Sequence[float]) -> NDArray[np.float64]:
        """Past tasks' weights given the new task's results (prior alone below two results)."""
        if len(values) < 2:
            return np.asarray(self.prior, dtype=np.float64)
        agreement = self.agreement(observed, values)
        weights = self.prior * np.exp((agreement - agreement.max()) / self.temperature)
        return np.asarray(weights / weights.sum(), dtype=np.float64)

    def propose(
        self,
        tried: Sequence[Sequence[float]],
        values: Sequence[float],
        *,
        observed: Sequence[Sequence[float]] | None = None,
        allowed: NDArray[np.bool_] | None = None,
    ) -> Proposal:
        """The next config to try.

        It most lowers the weighted mean over past tasks of the best regret reached; among
        candidates that lower it alike (once every past task's best is tried, all of them),
        the one the past tasks score highest.

        Args:
            tried: Unit points of every config already tried or running on the new task.
            values: Results of the finished ones (higher is better), in the order of
                ``observed``.
            observed: Unit points of the finished ones; ``tried[:len(values)]`` if omitted.
            allowed: Which candidates may be proposed (all if ``None``), e.g. those inside
                the ranges the new task's trials use.
        """
        tried_idx = self.nearest(tried)
        observed_idx = self.nearest(observed) if observed is not None else tried_idx[: len(values)]
        weights = self.weights(observed_idx, values)
        reached = self._regret[:, tried_idx].min(axis=1) if len(tried_idx) else np.ones(self.model.n_tasks)
        objective = weights @ np.minimum(reached[:, None], self._regret)
        objective[tried_idx] = np.inf
        if allowed is not None:
            objective[~allowed] = np.inf
        index = int(np.argmin(objective))
        tied = np.flatnonzero(objective <= objective[index] + 1e-12)
        if len(tied) > 1:
            index = int(tied[np.argmax(weights @ self.model.scores[:, tied])])
        return self._explain(index, weights)

    def guard(self, observed: Sequence[Sequence[float]], values: Sequence[float]) -> float:
        """Kendall's tau between the prior's predictions for the results and their order.

        Near 0 or below when the past says nothing about this task (the prior ranks the
        new task's results no better than chance); ``nan`` with fewer than two results.
        """
        if len(values) < 2:
            return float("nan")
        from scipy.stats import kendalltau  # a second: only once a study has results to judge the prior by

        predicted = self.prior @ self.model.scores[:, self.nearest(observed)]
        tau = kendalltau(predicted, np.asarray(values, dtype=np.float64)).statistic
        return float(tau)

    def _explain(self, index: int, weights: NDArray[np.float64]) -> Proposal:
        column = self.model.scores[:, index]
        predicted = float(weights @ column)
        spread = float(np.sqrt(weights @ (column - predicted) ** 2))
        uncertainty = spread if self.model.n_tasks > 1 else None
        support = weights * column
        top = np.argsort(-support, kind="stable")[:N_SOURCES]
        similarity = weights / weights.max()
        sources = tuple(
            Source(
                self.model.tasks[t], float(similarity[t]), float(column[t]), self.model.was_measured(t, index)
            )
            for t in map(int, top)
        )
        return Proposal(index, self.model.candidate(index), predicted, uncertainty, sources)


def descriptor_weights(model: MetaModel, descriptor: Mapping[str, Any]) -> NDArray[np.float64] | None:
    """Prior weights of the past tasks from descriptor similarity, or ``None`` if none applies.

    A numeric feature (NumPy numbers too) counts where it is a finite number, on the new
    task and on at least one past task; a non-finite value is ignored, for that feature
    and task only. Features are standardized over the past tasks, and a past task's
    distance ``d`` to the new task is the mean squared difference over the features it
    has. Its weight is ``exp(-d / (2 m))`` with ``m`` the mean distance of the past tasks,
    a bandwidth that cannot shrink onto the nearest tasks; a task with none of the
    features sits at ``m``. A string feature (family, tags) that differs halves the weight.
    No weight falls below ``PRIOR_FLOOR`` of the largest, so that the new task's results
    can still raise a task the descriptor finds unlike it (see :meth:`Proposer.weights`).
    """
    numeric = [key for key, value in descriptor.items() if _finite(value)]
    strings = [key for key, value in descriptor.items() if isinstance(value, str)]
    _note_ignored(model, descriptor, numeric)
    past = np.array(
        [[float(d[k]) if _finite(d.get(k)) else np.nan for k in numeric] for d in model.descriptors],
        dtype=np.float64,
    ).reshape(model.n_tasks, len(numeric))
    usable = np.isfinite(past).any(axis=0)
    if not usable.any() and not strings:
        return None
    weights = np.ones(model.n_tasks)
    if usable.any():
        new = np.array([float(descriptor[k]) for k in numeric], dtype=np.float64)[usable]
        weights *= _kernel(past[:, usable], new)
    for key in strings:
        weights *= np.array([1.0 if d.get(key) == descriptor[key] else 0.5 for d in model.descriptors])
    return np.asarray(np.maximum(weights, PRIOR_FLOOR * weights.max()), dtype=np.float64)


def _kernel(past: NDArray[np.float64], new: NDArray[np.float64]) -> NDArray[np.float64]:
    """Similarity of each past task (rows, NaN where a feature is missing) to ``new``."""
    scale = np.nanstd(past, axis=0)
    scale[~(scale > 0)] = 1.0
    squared = ((past - new) / scale) ** 2
    has = np.isfinite(squared)
    distance = np.where(has, squared, 0.0).sum(axis=1) / np.maximum(has.sum(axis=1), 1)
    bandwidth = float(distance[has.any(axis=1)].mean())
    distance[~has.any(axis=1)] = bandwidth
    if not bandwidth > 0:
        return np.ones(len(past))
    return np.asarray(np.exp(-distance / (2 * bandwidth)), dtype=np.float64)


def _finite(value: object) -> bool:
    """Whether ``value`` is a finite real number (Python's or NumPy's, never a bool)."""
    if not is_number(value):
        return False
    return math.isfinite(float(value))


_told: set[tuple[str, tuple[str, ...]]] = set()  # models and features already said to be ignored


def _note_ignored(model: MetaModel, descriptor: Mapping[str, Any], numeric: Sequence[str]) -> None:
    """Say once per model which of the new task's numeric features cannot weigh anything."""
    past = {key for d in model.descriptors for key, value in d.items() if _finite(value)}
    unused = tuple(sorted(key for key in numeric if key not in past))
    broken = tuple(
        sorted(k for k, v in descriptor.items() if isinstance(v, float | np.floating) and not _finite(v))
    )
    if unused and (model.digest, unused) not in _told:
        _told.add((model.digest, unused))
        what = "no dataset meta-features" if not past else f"only the meta-features {sorted(past)}"
        _log.info(
            "meta-learner: the meta-model's past tasks have %s, so the descriptor's %s are ignored "
            "(fit the model from histories whose tasks carry them to use them)",
            what,
            ", ".join(unused),
        )
    if broken:
        _log.debug("meta-learner: the descriptor's %s are not finite numbers; ignored", ", ".join(broken))
    mistyped = tuple(sorted(k for k, v in descriptor.items() if isinstance(v, str) and k in past))
    if mistyped and (model.digest, mistyped) not in _told:
        _told.add((model.digest, mistyped))
        _log.warning(
            "meta-learner: the descriptor's %s must be numbers, as the past tasks' are, got %s; "
            "as text they match no past task and weigh nothing",
            ", ".join(mistyped),
            ", ".join(f"{k}={descriptor[k]!r}" for k in mistyped),
        )
