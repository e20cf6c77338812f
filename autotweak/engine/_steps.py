"""Whether a finished trial's reports agree with ``metric.steps``, said once per study.

``metric.steps`` (reports in one full training) sizes the compute of a trial stopped
early, lets a pruner stop trials, and says when a trial has trained in full (it is then
never pruned); an objective that never reports, or reports more steps than that, silently
defeats one or the other, and so does counting steps from 0 (step ``s`` means ``s/steps``
of the training done: the learned pruner reads such a curve one step behind), or
reporting steps under a pruner with ``metric.steps`` unset (a pruned trial then costs a
full training). Fewer steps are fine: an objective may stop early by itself.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import optuna

from autotweak.engine._study import ATTR
from autotweak.spec import Experiment

__all__ = ["StepsCheck"]

_log = logging.getLogger(__name__)


class StepsCheck:
    """Warn once when a completed trial's reports do not match ``metric.steps``.

    Example:
        >>> from autotweak.spec import Experiment
        >>> exp = Experiment.from_dict({"name": "s", "objective": "m:f",
        ...     "tweaks": {"x": {"type": "categorical", "choices": [1, 2]}},
        ...     "metric": {"name": "loss", "direction": "minimize", "steps": 20}}, check_objective=False)
        >>> print(StepsCheck(exp).problem(number=0, steps=[]))  # doctest: +ELLIPSIS
        trial 0 completed without reporting any step, though 'metric.steps' is 20: ...
        >>> StepsCheck(exp).problem(number=0, steps=[1, 2, 3]) is None  # it stopped early itself
        True
    """

    def __init__(
        self,
        experiment: Experiment,
        study: optuna.Study | None = None,
        lock: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
    ) -> None:
        self._steps = experiment.metric.steps
        self._pruning = experiment.pruner.name != "none"
        self._study = study
        self._lock = lock  # the study's ask lock: the workers that share the study check and mark in turn
        self._said = False

    def __call__(self, number: int, steps: Sequence[int]) -> None:
        """Check a completed trial that reported ``steps``; log the study's first problem only."""
        if self._said:
            return
        problem = self.problem(number, steps)
        if problem is not None:
            self._said = True
            if self._first_in_study():
                _log.warning("%s", problem)

    def _first_in_study(self) -> bool:
        """Mark the study as warned; ``False`` if another worker (or session) already was.

        Under a storage without an ask lock (MySQL), two workers that check at once may both
        say it: at most once per worker.
        """
        study = self._study
        if study is None:
            return True
        try:
            with self._lock():
                if study._storage.get_study_system_attrs(study._study_id).get(ATTR.STEPS_WARNED):
                    return False
                study._storage.set_study_system_attr(study._study_id, ATTR.STEPS_WARNED, True)
        except Exception:  # a storage hiccup must not stop a worker over a warning: say it here
            _log.debug("could not read or mark the steps warning on the study", exc_info=True)
        return True

    def problem(self, number: int, steps: Sequence[int]) -> str | None:
        """What is wrong with a completed trial's reported ``steps``, or ``None``."""
        expected = self._steps
        if expected is None:
            if not (steps and self._pruning):
                return None
            return (
                f"trial {number} reported steps {steps[0]}..{steps[-1]}, but 'metric.steps' is not set: "
                "a pruned trial's compute is counted as a full training (budget.compute and the report's "
                "savings are off), and a trial can be pruned at its last report; set 'metric.steps' to "
                f"{steps[-1]} if that is one full training"
            )
        if not steps:
            if not self._pruning:
                return None
            return (
                f"trial {number} completed without reporting any step, though 'metric.steps' is "
                f"{expected}: the pruner cannot stop a trial that never reports; call "
                "trial.report(value, step) once per epoch (or set 'pruner: none')"
            )
        last = steps[-1]
        if last > expected:
            return (
                f"trial {number} completed after reporting step {last}, though 'metric.steps' is {expected} "
                f"(reports in one full training): the compute of pruned trials is counted against "
                f"{expected} steps, and no trial is pruned from step {expected} on; set 'metric.steps' to "
                f"{last} if that is one full training"
            )
        if steps[0] == 0:
            return (
                f"trial {number} reported step 0 first, though steps count from 1 (step s means s/{expected} "
                f"of a full training done): it is taken to count from 0, so it is never pruned at step "
                f"{expected - 1}, its last, and a pruned trial is charged its last step + 1, but the learned "
                f"pruner reads its curve one step behind; report step=epoch + 1, from 1 to {expected}"
            )
        return None
