"""One trial's bookkeeping, shared by the worker loop and the ask/tell API.

``begin`` opens the trial's record and builds the user's handle; ``finish`` tells Optuna
(see :mod:`~autotweak.engine._outcome`) and closes the record. Nothing else writes trial state.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from autotweak.engine._late import open_record
from autotweak.engine._outcome import REQUEUED, Outcome, tell_outcome
from autotweak.engine._provenance import code_path, provenance
from autotweak.engine._retries import attempt_left, requeue
from autotweak.engine._study import ATTR
from autotweak.engine._summary import trial_compute
from autotweak.engine._trial import PRUNER_ATTRS, Trial
from autotweak.engine._unreachable import retrying
from autotweak.engine._writer import WriteDropped
from autotweak.spec import Experiment
from autotweak.tracking import BaseTracker, NullTracker, TrialRecord, TrialStart

__all__ = ["REQUEUED", "Outcome", "TrialSession", "WorkerContext", "Writes"]

_log = logging.getLogger(__name__)

T = TypeVar("T")


class Writes(Protocol):
    """Runs a tracker write (now, or on the record writer); returns what gives its result."""

    def __call__(self, write: Callable[[], T], /) -> Callable[[], T]: ...


@dataclass(frozen=True)
class WorkerContext:
    """Everything a worker needs, as plain picklable data."""

    experiment: Experiment
    storage_url: str
    tracking_uri: str | None
    study_run_id: str | None
    home: str
    worker_index: int = 0
    local_workers: int = 1  # processes running trials on this machine, this one included
    deadline: float | None = None
    session: str | None = None  # the id of the session whose trials these are (see _study_sessions)


class TrialSession:
    """Starts and finishes trials of one study for one worker."""

    def __init__(
        self,
        ctx: WorkerContext,
        study: optuna.Study,
        tracker: BaseTracker,
        seed: int | None,
        notice: Callable[[], bool] | None = None,
    ) -> None:
        self.ctx = ctx
        self.experiment = ctx.experiment
        self.study = study
        self.tracker = tracker
        self.seed = seed
        self.provenance = provenance(code_path(ctx.experiment))
        self._run_ids: dict[int, Callable[[], str]] = {}
        self._starts: dict[int, tuple[TrialStart, float]] = {}  # with when the trial began (monotonic)
        self._baseline: dict[int, bool] = {}
        self._attrs: dict[int, dict[str, Any]] = {}
        self.notice = notice

    @functools.cached_property
    def _checkpoints(self) -> Path:
        """The study's checkpoint folder: its name and its own id (another study of the name has another).

        A study made before studies had ids keeps the folder it had (its name alone).
        """
        uid = self.study.user_attrs.get(ATTR.UID)
        name = self.experiment.name if uid is None else f"{self.experiment.name}-{uid}"
        return Path(self.ctx.home) / "checkpoints" / name

    def begin(
        self,
        trial: optuna.Trial,
        *,
        auto_prune: bool = True,
        critical: Callable[[], AbstractContextManager[None]] | None = None,
        opener: Writes | None = None,
    ) -> Trial:
        """Suggest the config, open the trial's record, and return the user's handle.

        ``opener`` runs the opening elsewhere (the worker's record writer) and returns what
        gives the run id once it is open; without it the record is open on return. The
        learning curve's periodic flushes go through it too, so that a tracker that does not
        answer costs a report seconds, not its client's minutes of retries.
        """
        exp = self.experiment
        attrs = trial.user_attrs
        root = int(attrs.get(ATTR.ROOT, trial.number))
        params = exp.space.suggest(trial)
        config = exp.trial_config(params)
        tags = {**exp.tags, **({ATTR.ABLATION: "true"} if attrs.get(ATTR.ABLATION) else {})}
        if self.ctx.session is not None:  # which session ran it: counted in the report, tagged in MLflow
            trial.set_user_attr(ATTR.SESSION, self.ctx.session)
            tags[ATTR.SESSION] = self.ctx.session
        start = TrialStart(
            study_name=exp.name,
            study_run_id=self.ctx.study_run_id,
            number=trial.number,
            trial_id=trial._trial_id,
            config=config,
            params=params,
            attempt=int(attrs.get(ATTR.ATTEMPT, 1)),
            retry_of=attrs.get(ATTR.RETRY_OF),
            seed=self.seed,
            provenance=self.provenance,
            tags=tags,
        )
        writes = opener or _open_now
        since = time.monotonic()
        run_id = writes(lambda: self._open(start, since))
        self._run_ids[trial.number] = run_id
        self._starts[trial.number] = (start, since)
        self._baseline[trial.number] = bool(attrs.get(ATTR.BASELINE))
        self._attrs[trial.number] = dict(attrs)
        folder = self._checkpoints / f"trial-{root:04d}"
        previous = attrs.get(ATTR.CHECKPOINT_RUN)
        if previous and not (folder.exists() and any(folder.iterdir())):
            try:
                self.tracker.download_checkpoint(str(previous), folder)
            except Exception as exc:  # the tracker is down: the trial runs again from its start, not never
                _log.warning(
                    "trial %d: could not fetch its checkpoint from run %s (%s: %s); it starts from step 0",
                    trial.number,
                    previous,
                    type(exc).__name__,
                    exc,
                )
        return Trial(
            trial,
            config,
            checkpoint_dir=folder,
            auto_prune=auto_prune,
            critical=critical,
            checkpoint_requested=self.notice,
            flush=lambda steps: writes(lambda: self.tracker.log_steps(run_id(), exp.metric.name, steps))(),
            opened=run_id,
            tracker=self.tracker,
            n_steps=exp.metric.steps,
        )

    def finish(self, handle: Trial, outcome: Outcome, duration: float) -> Outcome:
        """Tell Optuna how the trial ended and close its record; return the recorded outcome."""
        outcome = self.tell(handle, outcome)
        self.record(handle, outcome, duration)
        return outcome

    def tell(self, handle: Trial, outcome: Outcome) -> Outcome:
        """Tell Optuna how the trial ended (see :func:`~autotweak.engine._outcome.tell_outcome`).

        The stamps of the curve points its record's close sends are kept on the trial first
        (:meth:`~autotweak.engine._trial.Trial.keep_close_stamps`).
        """
        trial = handle.optuna_trial
        if not isinstance(self.tracker, NullTracker):  # no record, no close to land late
            handle.keep_close_stamps()
        return tell_outcome(self.study, trial, outcome, runs_again=self._runs_again(trial.number))

    def _runs_again(self, number: int) -> bool:
        """Whether a preempted trial will be queued again: its retries allow one more attempt.

        Marked so before it is told, as a dead worker's trial is: its checkpoint is kept and
        its retry queued after it fails, and a progress count read in between would count it,
        then one less once its retry stood in.
        """
        return attempt_left(self._attrs.get(number, {}), self.experiment.execution.max_retries)

    def record(self, handle: Trial, outcome: Outcome, duration: float) -> None:
        """Close the trial's record in the tracker (and queue a preempted trial again)."""
        trial = handle.optuna_trial
        exp = self.experiment
        run_id = self._opened(trial.number)
        attrs = self._attrs.pop(trial.number, {})
        if outcome.state in REQUEUED:
            kept = self._keep_checkpoint(trial.number, handle.checkpoint_dir, run_id)
            checkpoint_run = run_id if kept else attrs.get(ATTR.CHECKPOINT_RUN)  # else an earlier attempt's
            retrying(
                lambda: self._requeue(trial, attrs, checkpoint_run),
                f"queueing trial {trial.number} to run again",
                store=self.ctx.storage_url,
            )
        read = handle.steps
        compute = trial_compute(
            outcome.state,
            (read[0][0], read[-1][0]) if read else None,
            exp.metric.steps,
            retry=ATTR.RETRY_OF in attrs,
            training_first=handle._first_step,  # read by a retry that ended its training only
        )
        extra = {"autotweak.baseline": "true"} if self._baseline.pop(trial.number, False) else {}
        if outcome.settled and self.tracker.closed(run_id):  # one read, only for a trial failed elsewhere
            _log.info(
                "trial %d failed (%s); its record, closed by that process, is left as it is",
                trial.number,
                outcome.failure,
            )
            return
        if outcome.state == "pruned":
            extra |= self._pruner_attrs(trial)
        self.tracker.end_trial(
            TrialRecord(
                run_id=run_id,
                number=trial.number,
                state=outcome.state,  # type: ignore[arg-type]
                metric=exp.metric.name,
                value=outcome.value,
                steps=handle.unflushed_steps(),
                duration=duration,
                compute=compute,
                failure=outcome.failure,
                traceback=outcome.traceback,
                extra_tags=extra,
            )
        )
        shown = "" if outcome.value is None else f" {exp.metric.name}={outcome.value:.6g}"
        if outcome.failure and outcome.state == "failed":  # the traceback is in the trial's record
            shown += f" ({outcome.failure.strip().splitlines()[0][:200]})" if outcome.failure.strip() else ""
        _log.info("trial %d %s%s", trial.number, outcome.state, shown)

    def record_requeued(self, handle: Trial, outcome: Outcome, duration: float, writes: Writes) -> str | None:
        """Close a preempted or interrupted trial's record through ``writes``, and queue it again.

        ``writes`` is the record writer's :meth:`~autotweak.engine._writer.RecordWriter.call`:
        a tracker that does not answer costs seconds there (at Ctrl-C, or on a machine about
        to go away), not its client's minutes of retries. The trial is queued again all the
        same, without its record (its checkpoint stays in its folder here), and resuming the
        study writes the record from Optuna's.

        Returns:
            Why the tracker did not take the record (it does not answer), or ``None``: it did.
        """
        trial = handle.optuna_trial
        attrs = dict(self._attrs.get(trial.number, {}))  # now: the write takes them
        try:
            writes(lambda: self.record(handle, outcome, duration))()
        except WriteDropped as dropped:
            retrying(
                lambda: self._requeue(trial, attrs, attrs.get(ATTR.CHECKPOINT_RUN)),
                f"queueing trial {trial.number} to run again",
                store=self.ctx.storage_url,
            )
            _log.info(
                "trial %d %s; its record is not written while the tracker does not answer",
                trial.number,
                outcome.state,
            )
            return str(dropped)
        return None

    def _keep_checkpoint(self, number: int, folder: Path, run_id: str) -> bool:
        """Upload the trial's checkpoint to its run; ``False`` if there is none or the upload failed.

        A failed upload must not lose the trial: it is queued again all the same, from the
        checkpoint an earlier attempt kept, else from its start.
        """
        if not (folder.exists() and any(folder.iterdir())):
            return False
        try:
            self.tracker.upload_checkpoint(run_id, folder)
        except Exception as exc:
            _log.warning(
                "trial %d: could not keep its checkpoint in run %s (%s: %s); it is queued to run again "
                "without it",
                number,
                run_id,
                type(exc).__name__,
                exc,
            )
            return False
        return True

    def _requeue(self, trial: optuna.Trial, attrs: dict[str, Any], checkpoint_run: str | None) -> None:
        """Queue ``trial`` to run again, unless a retry of it is queued already.

        A stale-trial sweep queues the retry of a trial whose heartbeat stopped (the storage
        was down, say) before its worker could tell; a study opened while this worker kept
        the trial's checkpoint for longer than the grace period queues it too (see
        :func:`~autotweak.engine._lost_retries.queue_lost_retries`); and an attempt of this call
        may have queued it before its connection broke. A retry still waiting then resumes
        from the checkpoint this attempt kept.
        """
        trials = self.study.get_trials(deepcopy=False)
        retry = next((t for t in trials if t.user_attrs.get(ATTR.RETRY_OF) == trial.number), None)
        if retry is not None:
            _log.info("trial %d is queued to run again already", trial.number)
            if checkpoint_run and retry.state == TrialState.WAITING:
                with contextlib.suppress(UpdateFinishedTrialError):  # it ran and finished meanwhile
                    self.study._storage.set_trial_user_attr(
                        retry._trial_id, ATTR.CHECKPOINT_RUN, checkpoint_run
                    )
            return
        requeue(
            self.study,
            trial.number,
            dict(trial.params),
            attrs,
            max_retries=self.experiment.execution.max_retries,
            checkpoint_run=checkpoint_run,
        )

    def _open(self, start: TrialStart, since: float, *, close: bool = True) -> str:
        """Open a trial's record (see :func:`~autotweak.engine._late.open_record`)."""
        metric = self.experiment.metric
        return open_record(
            self.study, self.tracker, start, since=since, metric=metric.name, steps=metric.steps, close=close
        )

    def _opened(self, number: int) -> str:
        """The run id of trial ``number``'s record; if opening it failed, one more try now."""
        start, since = self._starts.pop(number)
        try:
            return self._run_ids.pop(number)()
        except WriteDropped as exc:  # not tried: the tracker did not answer then, as was said
            _log.info("trial %d: its record was not opened (%s); opening it now", number, exc)
        except Exception:
            _log.warning("trial %d: its record could not be opened; trying again", number, exc_info=True)
        return self._open(start, since, close=False)  # closed next; a catch-up elsewhere may have opened it

    def _pruner_attrs(self, trial: optuna.Trial) -> dict[str, str]:
        """What the pruner recorded on ``trial`` when it stopped it (``autotweak.pruner.*``), as tags."""
        storage = self.study._storage
        try:  # through a database restart: the pruned trial's record would lack why it was pruned
            attrs = retrying(
                lambda: storage.get_trial(trial._trial_id).user_attrs,
                f"reading the pruner's records of trial {trial.number}",
                store=storage,
            )
        except Exception:  # the record matters more than these tags
            _log.warning("trial %d: the pruner's records could not be read", trial.number, exc_info=True)
            return {}
        return {k: str(v) for k, v in attrs.items() if k.startswith(PRUNER_ATTRS)}


def _open_now(write: Callable[[], T], /) -> Callable[[], T]:
    result = write()
    return lambda: result
