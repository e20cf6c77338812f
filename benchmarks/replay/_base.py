"""The seam of the replay harness: a search method, and what it may know.

A method receives the replayed task and a :class:`SearchSetup`: the space, the seed, the
budget and, for meta-learners only, the :class:`History` of other tasks. It never sees
the test task's recorded data except through the trials it runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from autotweak import SearchSpace
from benchmarks.replay.simulate import Replay

__all__ = ["History", "ReplayMethod", "SearchSetup"]


@dataclass(frozen=True)
class History:
    """What a meta-learner knows of past tasks: their observed final validation scores.

    Attributes:
        regime: ``"dense"`` (every config of every past task) or ``"sparse"`` (one short
            seeded TPE run per past task).
        configs: ``config_id`` -> hyperparameters of the configs named in ``scores``.
        scores: Past task -> ``config_id`` -> final validation score, for the configs
            observed on that task.
        curves: Past task -> ``config_id`` -> validation curve (steps ``1..n``) of the
            configs in ``scores``; only for methods with ``uses_curves``, else empty.
    """

    regime: str
    configs: Mapping[int, Mapping[str, Any]]
    scores: Mapping[str, Mapping[int, float]]
    curves: Mapping[str, Mapping[int, tuple[float, ...]]] = field(default_factory=dict)

    @property
    def tasks(self) -> list[str]:
        """The past tasks, sorted."""
        return sorted(self.scores)


@dataclass(frozen=True)
class SearchSetup:
    """Everything a method is given besides the replayed task.

    Attributes:
        space: The search space to sample.
        seed: The run's seed.
        budget: Trials the method may run (a reference method may run more).
        history: Past tasks, for methods with ``uses_history``; ``None`` otherwise.
    """

    space: SearchSpace
    seed: int
    budget: int
    history: History | None = None


class ReplayMethod(ABC):
    """A search method run on a replayed task; a new method is one entry of ``METHODS``.

    Subclasses implement :meth:`search` and say what they are in :attr:`meta`.
    """

    uses_history: ClassVar[bool] = False
    uses_curves: ClassVar[bool] = False

    @property
    @abstractmethod
    def meta(self) -> dict[str, Any]:
        """The method's name and arguments (shown in the results)."""

    @abstractmethod
    def search(self, replay: Replay, setup: SearchSetup) -> None:
        """Run trials on ``replay`` (they accumulate in ``replay.trials``)."""
