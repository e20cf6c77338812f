"""The tracker seam: where trials are recorded for people to read."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from autotweak.tracking._records import StudyInfo, StudySummary, TrialRecord, TrialStart, TrialState

__all__ = ["BaseTracker", "NullTracker"]


class BaseTracker(abc.ABC):
    """Records studies and trials.

    Three methods are required; the rest are hooks that do nothing by default. A tracker
    must be safe to create in every worker process: it is built from plain settings.
    """

    @property
    def meta(self) -> dict[str, Any]:
        """What this tracker is: its name and arguments."""
        return {"name": type(self).__name__}

    @property
    def threaded_writes(self) -> bool:
        """Whether trial records are best written on a background thread, now.

        ``True`` where a write mostly waits outside this interpreter (a tracking server, a
        helper process), so that the trial's thread goes on meanwhile. ``False`` where a
        write keeps this process's Python busy: a thread would only make the trial's
        thread wait for the GIL.
        """
        return False

    @abc.abstractmethod
    def start_study(self, info: StudyInfo, run_id: str | None = None) -> str | None:
        """Open (or reopen, when ``run_id`` is given) the study's record; return its id."""

    @abc.abstractmethod
    def start_trial(self, start: TrialStart) -> str:
        """Open a trial's record and return its id."""

    @abc.abstractmethod
    def end_trial(self, record: TrialRecord) -> None:
        """Close a trial's record with its state, value and learning curve."""

    def log_steps(self, run_id: str, metric: str, steps: Sequence[tuple[int, float, int]]) -> None:
        """Write part of a running trial's learning curve (called now and then)."""

    def find_trial(self, study_name: str, trial_id: int) -> str | None:
        """The record id of the trial with Optuna id ``trial_id``, if it has one."""
        return None

    def one_record(self, study_name: str, trial_id: int, run_id: str) -> str:
        """The one record of trial ``trial_id``; ``run_id`` is an opening of it that may have raced another.

        A catch-up in another process may open the trial's record while its worker's opening
        waits out the tracker's retries. Each asks once it has landed; all pick the same
        record of those they see (the worker's before a catch-up's, which carries the tag
        ``autotweak.reconciled``; then the oldest) and delete the others, so the last to ask
        leaves one.
        """
        return run_id

    def open_trials(self, study_name: str) -> dict[int, str]:
        """Records still open, by Optuna trial id: the engine closes those Optuna has finished."""
        return {}

    def recorded_trials(self, study_name: str) -> set[int] | None:
        """Optuna ids of the trials that have a record, open or closed; ``None`` if unknown.

        The engine opens the missing records of finished trials from Optuna's at the end.
        """
        return None

    def upload_checkpoint(self, run_id: str, folder: Path) -> None:
        """Keep a preempted trial's checkpoint where another machine can fetch it."""

    def download_checkpoint(self, run_id: str, folder: Path) -> bool:
        """Fetch the checkpoint kept by record ``run_id`` into ``folder``; ``False`` if none."""
        return False

    def checkpoint_kept(self, run_id: str) -> bool:
        """Whether record ``run_id`` holds a checkpoint :meth:`upload_checkpoint` kept in full.

        A worker killed during the upload leaves part of one, which must not be resumed from.
        """
        return False

    def log_model(self, run_id: str, path: Path) -> str | None:
        """Keep a trial's saved model (a file or a folder) with record ``run_id``; return its address.

        The address is where a model registry finds the model again (MLflow's is
        ``runs:/<run id>/model``). ``None``: this tracker keeps no models, and :meth:`Trial.log_model
        <autotweak.Trial.log_model>` says so.
        """
        return None

    def refused(self, exc: Exception) -> bool:
        """Whether ``exc``, raised by a write, says this tracker refuses the record for good.

        ``True`` for a record it will never take (a param name it does not allow); ``False``
        for a tracker that could not be reached, or when it cannot tell: such a write is tried again.
        """
        return False

    def mark_failed(self, run_id: str, reason: str, *, state: TrialState = "failed") -> None:
        """Close the record of a trial that died without closing it (a killed worker).

        ``state`` is ``"preempted"`` for a trial whose spot machine went away: its objective
        did not fail, and it is run again.
        """

    def log_proposals(
        self, run_id: str, proposals: Sequence[Mapping[str, Any]], guard: Mapping[str, Any] | None = None
    ) -> None:
        """Record the meta-learner's proposals on the study's record, with how each scored.

        ``guard`` is what tripped the negative-transfer guard (``None``: it did not trip).
        """

    def log_session(self, run_id: str, session_id: str, text: str) -> None:
        """Record on the study's record one session that runs its trials, as ``text`` says it.

        Each session has its own entry, ``session_id``'s: sessions that start together (a
        resume and the workers joining it, on other machines) never write the same one; a
        session writes its own again as it ends, with the trials it finished.
        """

    def end_study(self, run_id: str | None, summary: StudySummary) -> None:
        """Write the study's summary and close its record."""

    def drop_study(self, run_id: str) -> None:
        """Delete the record of a study whose creation was cut short: the study itself is deleted too.

        Kept, it would stand for a study that does not exist (running for ever, in MLflow's UI).
        """

    def closed(self, run_id: str) -> bool:
        """Whether the trial record ``run_id`` is closed already; ``False`` if it cannot tell.

        Asked once by a worker whose trial another process failed meanwhile (a stale-trial
        sweep, its worker frozen past the grace period): that process closed the record, and
        the worker's own close would write its ``duration_s`` and ``compute`` a second time.
        """
        return False

    def unreachable(self) -> str | None:
        """Why this tracker's store cannot be reached now, in one line; ``None`` if it can, or cannot tell.

        One quick request and no retry: asked when writes have failed, or before the last
        ones of a study, so that a store that is down is said at once instead of each write
        waiting out its client's retries.
        """
        return None

    def close(self) -> None:
        """Release what the tracker holds (a helper process, connections); it is not used again."""


class NullTracker(BaseTracker):
    """Records nothing: for bare Optuna runs and baselines."""

    def start_study(self, info: StudyInfo, run_id: str | None = None) -> str | None:
        return run_id

    def start_trial(self, start: TrialStart) -> str:
        return f"null-{start.trial_id}"

    def end_trial(self, record: TrialRecord) -> None:
        return None
