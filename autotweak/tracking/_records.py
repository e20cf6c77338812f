"""What the engine tells a tracker: plain records, independent of any tracking backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["RECONCILED_TAG", "StudyInfo", "StudySummary", "TrialRecord", "TrialStart", "TrialState"]

# A trial record's tag, "true": written from Optuna's trial, not by its worker; dropped once the
# trial's own close lands on it after all (a late opening, a write that waited out retries).
RECONCILED_TAG = "autotweak.reconciled"

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
    """A finished trial: its state, value, learning curve and cost."""

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
