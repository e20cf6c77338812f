"""autotweak's meta-learner in the replay, through its public API only.

The training tasks' history becomes :class:`autotweak.meta.Histories`, the meta-model is
fit with :func:`autotweak.meta.fit_meta_model`, saved, and the study runs with the
registry's ``meta`` sampler pointed at the file, as a user's spec would
(``sampler: {name: meta, args: {model: path}}``). ``shuffled`` permutes each past task's
scores among its configs first: unrelated histories, for the negative-transfer guard.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from autotweak.meta import Histories, MetaModel, PastTrial, TaskHistory, fit_meta_model
from autotweak.space import SearchSpace
from autotweak.spec import Component
from benchmarks.replay._base import History, ReplayMethod, SearchSetup
from benchmarks.replay.simulate import Replay, run_study

__all__ = ["MetaLearnerSearch", "to_histories"]

# The model last fit on unshuffled histories: a job runs its seeds on one history object,
# and the fit does not depend on the seed, so it is made once per job, not once per seed.
_LAST: list[tuple[History, SearchSpace, MetaModel]] = []


def to_histories(history: History, *, shuffle_seed: int | None = None) -> Histories:
    """The replay's past-task scores as autotweak histories (optionally shuffled per task)."""
    rng = np.random.default_rng(shuffle_seed)
    tasks = []
    for name in history.tasks:
        ids = list(history.scores[name])
        values = [history.scores[name][cid] for cid in ids]
        if shuffle_seed is not None:
            values = [values[i] for i in rng.permutation(len(values))]
        trials = tuple(
            PastTrial(dict(history.configs[cid]), float(value), source=f"bench:{name}/{cid}")
            for cid, value in zip(ids, values, strict=True)
        )
        tasks.append(TaskHistory(name, "maximize", trials, source=f"bench:{history.regime}"))
    return Histories(tuple(tasks))


class MetaLearnerSearch(ReplayMethod):
    """The ``meta`` sampler (TPE after the meta phase) with a model fit on the past tasks.

    Args:
        shuffled: Fit on histories whose scores are permuted within each task.
        args: Further arguments of the ``meta`` sampler (``n_meta``, ``guard_after``...).
    """

    uses_history = True

    def __init__(self, shuffled: bool = False, **args: Any) -> None:
        self.shuffled = shuffled
        self.args = args

    @property
    def meta(self) -> dict[str, Any]:
        return {"name": "meta", "shuffled": self.shuffled, **self.args}

    def search(self, replay: Replay, setup: SearchSetup) -> None:
        if setup.history is None:
            raise ValueError("the meta-learner needs the history of past tasks, got history=None.")
        model = self._model(setup.history, setup)
        with tempfile.TemporaryDirectory() as folder:
            path = model.save(Path(folder) / "replay.meta.npz")
            sampler = Component("meta", {"model": str(path), **self.args})
            run_study(replay, setup.space, seed=setup.seed, budget=setup.budget, sampler=sampler)

    def _model(self, history: History, setup: SearchSetup) -> MetaModel:
        if self.shuffled:
            return fit_meta_model(to_histories(history, shuffle_seed=setup.seed), setup.space)
        if _LAST and _LAST[0][0] is history and _LAST[0][1] is setup.space:
            return _LAST[0][2]
        model = fit_meta_model(to_histories(history), setup.space)
        _LAST[:] = [(history, setup.space, model)]
        return model
