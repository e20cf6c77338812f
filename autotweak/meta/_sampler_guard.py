"""The negative-transfer guard of ``MetaSampler``, and the cold fallback once it has tripped.

The guard compares how the past ranks this study's results with how they came out (a
Kendall tau); below the threshold it records its verdict on the study, and from then on
the base sampler sees the study without the proposed trials.
"""

from __future__ import annotations

import logging
import math
from typing import cast

from optuna.study import Study

from autotweak._study_view import StudyView
from autotweak.meta._propose import Proposer
from autotweak.meta._records import GUARD_ATTR, PROPOSAL_ATTR, guard_of
from autotweak.meta._sampler_serving import StudyKey, study_key

__all__ = ["Guard"]

_log = logging.getLogger(__name__)


class Guard:
    """The guard's part of :class:`~autotweak.meta.MetaSampler` (a mix-in of it).

    It reads the sampler's proposer, ``guard_after``, ``guard_threshold`` and the studies
    it has turned cold.
    """

    proposer: Proposer | None
    guard_after: int
    guard_threshold: float
    _cold: set[StudyKey]

    def _base_view(self, study: Study) -> Study:
        """The study as the base sampler sees it: without the proposals once the guard tripped."""
        if study_key(study) not in self._cold:
            return study
        return cast(
            Study, StudyView(study, keep=lambda t: not isinstance(t.system_attrs.get(PROPOSAL_ATTR), dict))
        )

    def _guard_recorded(self, study: Study) -> bool:
        """Whether the guard has tripped for this study, in any process (read from the storage).

        Read for each trial until it has, so every worker's base sampler turns cold at the
        same point of the study, also one that stopped proposing before the guard tripped.
        """
        if self.proposer is None:
            return False
        return guard_of(study) is not None

    def _guard_tripped(self, study: Study, observed: list[list[float]], values: list[float]) -> bool:
        if study_key(study) in self._cold:
            return True
        if len(values) < self.guard_after or self.proposer is None:
            return False
        tau = self.proposer.guard(observed, values)
        if math.isnan(tau) or tau >= self.guard_threshold:
            return False
        _log.warning(
            "meta-learner: the past ranks this study's %d results no better than chance (tau %.2f < %.2f); "
            "falling back to the cold sampler",
            len(values),
            tau,
            self.guard_threshold,
        )
        record = {"tau": round(tau, 4), "results": len(values), "threshold": self.guard_threshold}
        study._storage.set_study_system_attr(study._study_id, GUARD_ATTR, record)
        return True
