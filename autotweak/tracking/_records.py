"""What the engine tells a tracker: plain records, independent of any tracking backend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["RECONCILED_TAG", "StudyInfo", "StudySummary", "TrialRecord", "TrialStart", "TrialState"]

# A trial record's tag, "true": written from Optuna's trial, not by its worker; dropped once the
# trial's own close lands on it after all (a late opening, a write that waited out retries).
RECONCILED_TAG = "autotweak.reconciled"

_SAID_STATE = {"waiting": "queued"}  # as `autotweak status` and optimize's stop line say it

TrialState = Literal["complete", "pruned", "failed", "preempted", "interrupted", "running"]


@dataclass(frozen=True)
class StudyInfo:
    """A study as a tracker sees it when the study (re)starts."""

    study_name: str
    spec: dict[str, Any]
    meta: dict[str, dict[str, Any]]
    storage: str
    source_file: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TrialStart:
    """A trial as it starts on a worker."""

    study_name: str
    study_run_id: str | None
    number: int
    trial_id: int
    config: dict[str, Any]
    params: dict[str, Any]
    attempt: int
    retry_of: int | None
    seed: int | None
    provenance: dict[str, str]
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class TrialRecord:
    """A finished trial: its state, value, learning curve and cost.

    ``extra_metrics`` are written beside ``final_<metric>``, ``compute`` and ``duration_s``
    (a spot trial's ``cost_usd``, where a catch-up knows it).
    """

    run_id: str
    number: int
    state: TrialState
    metric: str
    value: float | None
    steps: list[tuple[int, float, int]]
    duration: float
    compute: float | None = None
    failure: str | None = None
    traceback: str | None = None
    extra_tags: dict[str, str] = field(default_factory=dict)
    extra_metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class StudySummary:
    """Where a study stands: counts by state and the best trial."""

    study_name: str
    counts: dict[str, int]
    best_number: int | None
    best_value: float | None
    best_params: dict[str, Any]  # the best trial's tweaks (its Optuna params), not its full config
    base_value: float | None
    compute: float
    interrupted: bool = False

    def line(self, stop_reasons: Sequence[str] = ()) -> str:
        """The study in one line, as ``autotweak optimize`` ends: counts by state, best and base.

        Example:
            >>> s = StudySummary("wine", {"complete": 8, "pruned": 2, "failed": 0}, 5, 0.97, {}, None, 9.0)
            >>> s.line(["trials"])
            "study 'wine' stopped (trials): 8 complete, 2 pruned; best 0.97 (trial 5)"
        """
        said = ", ".join(f"{n} {_SAID_STATE.get(state, state)}" for state, n in self.counts.items() if n)
        reasons = sorted(set(stop_reasons)) or (["interrupted"] if self.interrupted else [])
        stopped = f" stopped ({', '.join(reasons)})" if reasons else ""
        best = "no trial completed"
        if self.best_value is not None:
            best = f"best {self.best_value:.6g} (trial {self.best_number})"
        base = "" if self.base_value is None else f", base config {self.base_value:.6g}"
        return f"study {self.study_name!r}{stopped}: {said or 'no trials'}; {best}{base}"

    def __repr__(self) -> str:
        """:meth:`line`, not every field: the best trial's params are in :attr:`best_params`."""
        return f"StudySummary({self.line()})"
