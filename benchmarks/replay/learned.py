"""TPE with the learned-curve pruner, its curve model trained on the training tasks only.

The method is given the :class:`History` of the other tasks with their validation curves
(``uses_curves``), fits a curve model on them, and runs the engine with the ``learned``
pruner reading that model. Models are cached on disk by what they were trained on (the
training tasks and configs, the regime, the code of ``autotweak.curves``), so the seeds of
a job and the jobs of a split share one fit.

Example:
    >>> method = LearnedPrunerSearch()
    >>> method.meta["pruner"]
    'learned'
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import autotweak.curves
from autotweak.curves import fit_curve_model
from autotweak.meta import Histories, PastTrial, TaskHistory
from autotweak.space import SearchSpace
from autotweak.spec import Component
from benchmarks.replay._base import History, ReplayMethod, SearchSetup
from benchmarks.replay.simulate import Replay, run_study

__all__ = ["LearnedPrunerSearch", "curve_histories"]

CACHE = (
    Path(os.environ.get("AUTOTWEAK_BENCH_CACHE", Path(tempfile.gettempdir()) / "autotweak-bench")) / "curves"
)


def curve_histories(history: History) -> Histories:
    """The curves of ``history`` as :class:`~autotweak.meta.Histories` (steps ``1..n``)."""
    tasks = []
    for task, curves in sorted(history.curves.items()):
        trials = tuple(
            PastTrial(
                params=history.configs[cid],
                value=curve[-1],
                steps=tuple(range(1, len(curve) + 1)),
                curve=curve,
                source=f"bench:{task}#{cid}",
            )
            for cid, curve in sorted(curves.items())
        )
        tasks.append(TaskHistory(task, "maximize", trials))
    return Histories(tuple(tasks))


def _code_version() -> str:
    folder = Path(autotweak.curves.__file__).parent
    digest = hashlib.sha1()
    for path in sorted(folder.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


class LearnedPrunerSearch(ReplayMethod):
    """A sampler with the ``learned`` pruner, its model fit on the history's curves.

    Args:
        sampler: Sampler by registry name.
        top_k: The pruner's ``top_k``.
        threshold: The pruner's ``threshold``.
        min_steps: The pruner's ``min_steps`` (its default if ``None``).
        hidden: Hidden layer sizes of the curve model (smaller than the shipped models').
        max_examples: Training rows of the curve model.
    """

    uses_history = True
    uses_curves = True

    def __init__(
        self,
        sampler: str = "tpe",
        top_k: int = 5,
        threshold: float = 0.1,
        min_steps: int | None = None,
        hidden: tuple[int, ...] = (32, 32),
        max_examples: int = 20_000,
    ) -> None:
        self.sampler = sampler
        self.top_k = top_k
        self.threshold = threshold
        self.min_steps = min_steps
        self.hidden = hidden
        self.max_examples = max_examples

    @property
    def meta(self) -> dict[str, Any]:
        return {
            "name": "engine",
            "sampler": self.sampler,
            "pruner": "learned",
            "pruner_args": {"top_k": self.top_k, "threshold": self.threshold, "min_steps": self.min_steps},
            "model": {"hidden": list(self.hidden), "max_examples": self.max_examples},
        }

    def search(self, replay: Replay, setup: SearchSetup) -> None:
        if setup.history is None or not setup.history.curves:
            raise ValueError("tpe+learned needs the curves of past tasks, got a history without curves.")
        model = self.model_file(setup.history, setup.space)
        args = {"model": str(model), "top_k": self.top_k, "threshold": self.threshold}
        if self.min_steps is not None:
            args["min_steps"] = self.min_steps
        run_study(
            replay,
            setup.space,
            seed=setup.seed,
            budget=setup.budget,
            sampler=Component(self.sampler),
            pruner=Component("learned", args),
        )

    def model_file(self, history: History, space: SearchSpace) -> Path:
        """The curve model of ``history``: read from the cache, or fit and cached."""
        key = {
            "regime": history.regime,
            "tasks": {task: sorted(curves) for task, curves in sorted(history.curves.items())},
            "space": space.to_dict(),
            "hidden": list(self.hidden),
            "max_examples": self.max_examples,
            "code": _code_version(),
        }
        digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
        path = CACHE / f"{space.name or 'space'}-{digest}.curve.json"
        if path.is_file():
            return path
        model = fit_curve_model(
            curve_histories(history), space, hidden=self.hidden, max_examples=self.max_examples
        )
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        model.save(partial)
        os.replace(partial, path)
        return path
