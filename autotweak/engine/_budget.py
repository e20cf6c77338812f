"""Budget accounting shared by all workers, read from the storage (the coordination truth)."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from autotweak.engine._study import ATTR, study_compute
from autotweak.spec import Budget

__all__ = ["BudgetView", "ask_lock", "sampler_exhausted"]


@dataclass(frozen=True)
class BudgetView:
    """What the study has spent, as counted from its trials.

    A retried trial replaces the stale one it re-runs, so retries do not count twice.
    """

    counted: int
    waiting: int
    running: int
    compute: float

    @classmethod
    def of(cls, trials: list[FrozenTrial], steps: int | None) -> BudgetView:
        retries = sum(1 for t in trials if ATTR.RETRY_OF in t.user_attrs)
        return cls(
            counted=len(trials) - retries,
            waiting=sum(1 for t in trials if t.state == TrialState.WAITING),
            running=sum(1 for t in trials if t.state == TrialState.RUNNING),
            compute=study_compute(trials, steps),
        )

    def exhausted(self, budget: Budget, deadline: float | None) -> str | None:
        """Why no new trial may start, or ``None`` if one may."""
        if deadline is not None and time.time() >= deadline:
            return "wall time"
        if budget.compute is not None and self.compute >= budget.compute:
            return "compute"
        if self.waiting:
            return None
        if budget.trials is not None and self.counted >= budget.trials:
            return "trials"
        return None


@contextmanager
def ask_lock(storage_url: str, study_name: str) -> Iterator[None]:
    """Serialize budget check + ask between processes sharing a local SQLite storage.

    Without it, N workers could each see one trial left and all start one. Remote
    storages go without the lock and may overshoot by at most ``workers - 1`` trials.
    """
    if not storage_url.startswith("sqlite:///"):
        yield
        return
    path = Path(storage_url.removeprefix("sqlite:///")).with_suffix(f".{_safe(study_name)}.lock")
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def sampler_exhausted(study: optuna.Study) -> str | None:
    """``"grid exhausted"`` once a grid sampler has nothing left to propose."""
    is_exhausted = getattr(study.sampler, "is_exhausted", None)
    if callable(is_exhausted) and is_exhausted(study):
        return "grid exhausted"
    return None
