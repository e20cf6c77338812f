"""Trial records written by a helper process, on a core that the trials leave idle.

MLflow's client is CPU-bound Python: against a SQLite store, opening and closing one
trial's run costs about 12 ms of this process's CPU, on a thread or not (it holds the
GIL). For trials that take a second or more that is noise; for trials of a few tens of
milliseconds it is a third of the time. :class:`OffloadingTracker` then moves the trial
records to a tracker of the same kind running in a child process, so that the writes
happen on another core while the next trial runs.

It does so only where it helps. In ``auto`` mode the child starts once the last three
trials took under a second (their median) and this machine has a core more than the workers that run
here; ``AUTOTWEAK_TRACKING_PROCESS`` set to ``on`` starts it at once, ``off`` never.
Until the child has imported its tracker (a second or two, on the idle core), records
are written here as before, and a study that ends before then does not wait for it: it
was given nothing to write. Study-level writes always stay here.

Nothing is lost if the child goes: the child finishes the write it has started when its
parent dies, and a write it could not do is redone here, or closed from Optuna's record
when the study ends, as any write that fails.
"""

from __future__ import annotations

import logging
import os
import pickle
import statistics
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from autotweak.exceptions import AutotweakError, TrackingError
from autotweak.tracking._base import BaseTracker
from autotweak.tracking._offload_process import TrackerProcess
from autotweak.tracking._records import StudyInfo, StudySummary, TrialRecord, TrialStart, TrialState

__all__ = ["ENV_VAR", "OffloadingTracker", "offload_mode", "spare_core"]

_log = logging.getLogger(__name__)

ENV_VAR = "AUTOTWEAK_TRACKING_PROCESS"
Mode = Literal["auto", "on", "off"]
_MODES: tuple[Mode, ...] = ("auto", "on", "off")
SHORT_TRIAL_S = 1.0  # below this, a trial's record is a noticeable part of its time
_WINDOW = 3  # trials in a row that must be short


def offload_mode() -> Mode:
    """The mode set by ``$AUTOTWEAK_TRACKING_PROCESS`` (``auto`` when unset)."""
    value = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    for mode in _MODES:
        if value == mode:
            return mode
    raise AutotweakError(f"${ENV_VAR} must be one of {', '.join(_MODES)}, got {value!r}.")


def spare_core(local_workers: int) -> bool:
    """Whether this machine has a core more than the ``local_workers`` that run trials here."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return cores > local_workers


class OffloadingTracker(BaseTracker):
    """A tracker that writes trial records in a :class:`TrackerProcess` when that helps.

    Args:
        local: The tracker of this process: study-level calls, and trial records until the
            child is ready (or when it is not used).
        factory: Builds the same kind of tracker in the child.
        mode: ``auto``, ``on`` or ``off`` (see the module's documentation).
        idle_core: Whether this machine has an idle core for the child (``auto`` only).
    """

    def __init__(
        self,
        local: BaseTracker,
        factory: Callable[[], BaseTracker],
        *,
        mode: Mode = "auto",
        idle_core: bool = True,
    ) -> None:
        self.local = local
        self._factory = factory
        self._allowed = mode == "on" or (mode == "auto" and idle_core)
        self._durations: deque[float] = deque(maxlen=_WINDOW)
        self._remote: set[str] = set()  # records opened in the child and not closed yet
        self.process: TrackerProcess | None = None
        self._retired: list[TrackerProcess] = []  # gone or gave up: waited for at close
        self.offloaded = 0  # trial records opened in the child
        if mode == "on":
            self._start_process()

    @property
    def meta(self) -> dict[str, Any]:
        return self.local.meta  # where the records are written from does not change what they are

    @property
    def threaded_writes(self) -> bool:
        """Once the helper is ready, a write here is a wait for it, which a thread overlaps."""
        return self._usable() is not None or self.local.threaded_writes

    # -- trial records: in the child once it is ready ---------------------------------
    def start_trial(self, start: TrialStart) -> str:
        process = self._usable()
        if process is not None:
            try:
                run_id: str = process.call("start_trial", start)
            except TrackingError:
                if not process.broken:
                    raise
                self._lost(process)
            else:
                self._remote.add(run_id)
                self.offloaded += 1
                return run_id
        return self.local.start_trial(start)

    def end_trial(self, record: TrialRecord) -> None:
        self._remote_or_local(record.run_id, "end_trial", record)
        self._remote.discard(record.run_id)
        self._durations.append(record.duration)
        if self._should_start():
            self._start_process()

    def log_steps(self, run_id: str, metric: str, steps: Sequence[tuple[int, float, int]]) -> None:
        self._remote_or_local(run_id, "log_steps", run_id, metric, steps)

    def _remote_or_local(self, run_id: str, method: str, *args: Any) -> None:
        """Where ``run_id`` was opened; here, if the child is gone (the local tracker reads what it has)."""
        process = self.process
        if run_id in self._remote and process is not None:
            try:
                process.call(method, *args)
                return
            except TrackingError:
                if not process.broken:
                    raise
                self._lost(process)
        getattr(self.local, method)(*args)

    def _usable(self) -> TrackerProcess | None:
        process = self.process
        if process is None or process.ready():
            return process
        if process.broken:  # it died, or could not build its tracker, before it was ready
            self._lost(process)
        return None

    def _should_start(self) -> bool:
        return (
            self.process is None
            and self._allowed
            and len(self._durations) == _WINDOW
            and statistics.median(self._durations) < SHORT_TRIAL_S
        )

    def _start_process(self) -> None:
        try:
            self.process = TrackerProcess(self._factory)
        except (OSError, ValueError, pickle.PicklingError):  # ValueError: no pass_fds here
            _log.warning("could not start the tracking process; records are written here", exc_info=True)
            self._allowed = False
            return
        _log.debug("trial records go to tracking process %d once it is ready", self.process.pid)

    def _lost(self, process: TrackerProcess) -> None:
        _log.warning("the tracking process ended (%s); records are written here from now on", process.broken)
        self._allowed = False
        self._retired.append(process)
        self.process = None

    def close(self) -> None:
        """Wait for the child's writes, unless it waits on a store that does not answer: then end it.

        A child that is not ready yet was given no record: it is ended at once.

        Its call would wait out the client's retries (MLflow's: four minutes); the records it
        was writing are written from Optuna's trials when the study closes or opens again.
        """
        if self.process is not None:
            if not self.process.ready():  # still importing: it holds no record, so nothing to wait for
                self.process.kill()
            self._retired.append(self.process)
            self.process = None
            _log.debug("%d trial records were written by the tracking process", self.offloaded)
        stuck = any(p.busy for p in self._retired) and self.local.unreachable() is not None
        for process in self._retired:
            if stuck:
                process.kill()
            process.close()
        self._retired.clear()
        self.local.close()

    # -- everything else: here ------------------------------------------------------
    def start_study(self, info: StudyInfo, run_id: str | None = None) -> str | None:
        return self.local.start_study(info, run_id)

    def end_study(self, run_id: str | None, summary: StudySummary) -> None:
        self.local.end_study(run_id, summary)

    def drop_study(self, run_id: str) -> None:
        self.local.drop_study(run_id)

    def log_session(self, run_id: str, session_id: str, text: str) -> None:
        self.local.log_session(run_id, session_id, text)

    def unreachable(self) -> str | None:
        return self.local.unreachable()

    def closed(self, run_id: str) -> bool:
        return self.local.closed(run_id)  # the child's closes are in the same store

    def find_trial(self, study_name: str, trial_id: int) -> str | None:
        return self.local.find_trial(study_name, trial_id)

    def one_record(self, study_name: str, trial_id: int, run_id: str) -> str:
        return self.local.one_record(
            study_name, trial_id, run_id
        )  # the child's records are in the same store

    def open_trials(self, study_name: str) -> dict[int, str]:
        return self.local.open_trials(study_name)

    def recorded_trials(self, study_name: str) -> set[int] | None:
        return self.local.recorded_trials(study_name)

    def upload_checkpoint(self, run_id: str, folder: Path) -> None:
        self.local.upload_checkpoint(run_id, folder)

    def download_checkpoint(self, run_id: str, folder: Path) -> bool:
        return self.local.download_checkpoint(run_id, folder)

    def checkpoint_kept(self, run_id: str) -> bool:
        return self.local.checkpoint_kept(run_id)

    def log_model(self, run_id: str, path: Path) -> str | None:
        return self.local.log_model(run_id, path)  # a record opened in the child is in the same store

    def refused(self, exc: Exception) -> bool:
        return self.local.refused(exc)

    def mark_failed(self, run_id: str, reason: str, *, state: TrialState = "failed") -> None:
        self.local.mark_failed(run_id, reason, state=state)

    def log_proposals(
        self, run_id: str, proposals: Sequence[Mapping[str, Any]], guard: Mapping[str, Any] | None = None
    ) -> None:
        self.local.log_proposals(run_id, proposals, guard)
