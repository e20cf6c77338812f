"""A study that shows its samplers and pruners a chosen set of trials.

Optuna's samplers and pruners read a study's trials through ``get_trials`` or
``_get_trials``. Handing them a :class:`StudyView` decides what they see, while every
other attribute (directions, storage, ids) is the study's own.

Example:
    >>> import optuna
    >>> study = optuna.create_study()
    >>> study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    >>> len(StudyView(study, keep=lambda t: t.number > 0).trials)
    2
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Container, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

__all__ = ["StudyView"]


class StudyView:
    """``study`` showing only some trials; anything else is the study's.

    Args:
        study: The study.
        trials: Answer from these trials (one earlier read) instead of reading the
            storage at each call.
        keep: Show only the trials for which this is true.
    """

    def __init__(
        self,
        study: optuna.Study,
        *,
        trials: Sequence[FrozenTrial] | None = None,
        keep: Callable[[FrozenTrial], bool] | None = None,
    ) -> None:
        self._study = study
        self._trials = None if trials is None else list(trials)
        self._keep = keep

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        """The trials shown, filtered by ``states``."""
        return self._get_trials(deepcopy, states)

    def _get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None, use_cache: bool = False
    ) -> list[FrozenTrial]:
        read = self._trials
        if read is None:
            read = self._study._get_trials(deepcopy=False, states=states, use_cache=use_cache)
        out = [
            t for t in read if (states is None or t.state in states) and (self._keep is None or self._keep(t))
        ]
        return copy.deepcopy(out) if deepcopy else out

    @property
    def trials(self) -> list[FrozenTrial]:
        """All trials shown (deep copies)."""
        return self.get_trials()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)
