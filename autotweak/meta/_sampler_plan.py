"""What ``MetaSampler`` proposes next, and when it hands the study to its base sampler.

The next proposal is decided from the storage's trials alone (the proposals made, the
claims of running trials, the finished trials' results), so every worker decides alike; the
study is handed over for good once the proposals are spent, the guard has tripped, the
study's trials use another space, or no candidate is left inside their ranges.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from optuna.distributions import BaseDistribution
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from autotweak.meta._model import MetaModel
from autotweak.meta._propose import Proposal
from autotweak.meta._records import _proposed
from autotweak.meta._sampler_guard import Guard
from autotweak.meta._sampler_serving import (
    Serving,
    StudyKey,
    candidates_inside,
    claimed,
    study_key,
    trial_point,
    unit_point,
)

__all__ = ["Planner"]

_log = logging.getLogger(__name__)


class Planner(Guard):
    """The proposing part of :class:`~autotweak.meta.MetaSampler` (a mix-in of it).

    It reads the sampler's model, its parameter names, ``n_meta``, the trials it serves and
    the studies it has handed over.
    """

    model: MetaModel | None
    n_meta: int
    _names: list[str]
    _pending: dict[tuple[StudyKey, int], Serving | None]
    _inside: dict[frozenset[tuple[str, BaseDistribution]], NDArray[np.bool_]]
    _handed_over: set[StudyKey]

    def _next_proposal(self, study: Study, trial: FrozenTrial) -> Proposal | None:
        if study_key(study) in self._handed_over or self.proposer is None or len(study.directions) != 1:
            return None
        if "fixed_params" in trial.system_attrs:
            return None
        # The storage's trials, not the study's: a pruner may hand samplers a part of the study
        # (Hyperband, its bracket), and the proposals are counted and tried over all of it.
        everything = study._storage.get_all_trials(study._study_id, deepcopy=False)
        others = [t for t in everything if t.number != trial.number]
        if self._space_differs(study, others):
            return None
        proposed = _proposed(others)
        # Once every proposal is made, the guard judges the trials up to the last of them, and
        # hands over only when all of those are finished: what it decides then depends on the
        # storage alone, the same in a process that joins or resumes the study later.
        window = others
        if len(proposed) >= self.n_meta:
            last = max((t.number for t in proposed), default=-1)
            window = [t for t in others if t.number <= last]
        tried, observed, values = self._evidence(window, study.direction)
        if self._guard_tripped(study, observed, values):
            self._cold.add(study_key(study))
            self._hand_over(study)
            return None
        running = self._running(study, trial, others)
        if len(proposed) + len(running) >= self.n_meta:
            judged = len(proposed) >= self.n_meta and all(t.state.is_finished() for t in window)
            if judged:
                self._hand_over(study)
            return None
        inside = self._inside_distributions(others)
        tried += running
        if not self._left(tried, inside):
            self._hand_over(study, "no candidate left inside the ranges the study's trials use")
            return None
        return self.proposer.propose(tried, values, observed=observed, allowed=inside)

    def _space_differs(self, study: Study, others: Sequence[FrozenTrial]) -> bool:
        """Whether a complete trial lacks a parameter of the model's space (then the study is handed over)."""
        lacking = next((t for t in others if t.state == TrialState.COMPLETE and not self._covers(t)), None)
        if lacking is None:
            return False
        missing = [n for n in self._names if n not in lacking.params]
        self._hand_over(
            study,
            f"trial {lacking.number} set no {', '.join(missing)}, which the meta-model's space has: the "
            "objective suggests another space (the proposals are the meta-model's params, by name), so "
            "the meta-model proposes nothing in this study",
            logging.WARNING,
        )
        return True

    def _running(self, study: Study, trial: FrozenTrial, others: Sequence[FrozenTrial]) -> list[list[float]]:
        """Unit points of the proposals other trials run now: this process's, then other processes' claims."""
        mine = {tid: s for (owner, tid), s in self._pending.items() if owner == study_key(study)}
        open_ = [s for tid, s in mine.items() if s is not None and tid != trial._trial_id]
        running = [s.units for s in open_ if not (s.recorded or s.dropped)]
        return running + [units for tid, units in claimed(others).items() if tid not in mine]

    def _hand_over(self, study: Study, reason: str | None = None, level: int = logging.INFO) -> None:
        """Give the study to the base sampler for good, saying why at ``level``.

        The proposal count and the guard only ever grow, so from here on this process
        stops reading every trial before each ask.
        """
        if reason is not None:
            _log.log(level, "meta-learner: %s; the base sampler takes over", reason)
        self._handed_over.add(study_key(study))

    def _covers(self, trial: FrozenTrial) -> bool:
        return all(name in trial.params for name in self._names)

    def _inside_distributions(self, trials: Sequence[FrozenTrial]) -> NDArray[np.bool_] | None:
        """Which candidates fit the distributions the study's trials last used, if any are known."""
        assert self.model is not None
        known: dict[str, BaseDistribution] = {}
        for t in trials:
            known |= {name: d for name, d in t.distributions.items() if name in self._names}
        if not known:
            return None
        key = frozenset(known.items())
        if key not in self._inside:
            self._inside[key] = candidates_inside(self.model, known)
        return self._inside[key]

    def _left(self, tried: Sequence[Sequence[float]], allowed: NDArray[np.bool_] | None) -> bool:
        """Whether some candidate is allowed and not tried yet."""
        assert self.model is not None and self.proposer is not None
        left = np.ones(len(self.model.units), dtype=np.bool_) if allowed is None else allowed.copy()
        left[self.proposer.nearest(tried)] = False
        return bool(left.any())

    def _evidence(
        self, trials: Sequence[FrozenTrial], direction: StudyDirection
    ) -> tuple[list[list[float]], list[list[float]], list[float]]:
        """Unit points of the configs tried (or running), and the finished ones with results."""
        sign = 1.0 if direction == StudyDirection.MAXIMIZE else -1.0
        tried: list[list[float]] = []
        observed: list[list[float]] = []
        values: list[float] = []
        for t in trials:
            point = trial_point(self.model, self._names, t)
            if point is None and not t.state.is_finished():  # asked for, its values not stored yet
                point = unit_point(self.model, self._names, t.system_attrs.get("fixed_params", {}))
            if point is None:
                continue
            tried.append(point)
            if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value):
                observed.append(point)
                values.append(sign * t.value)
        return tried, observed, values
