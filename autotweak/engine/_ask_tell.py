"""The ask/tell API, for people who own their training loop."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from types import TracebackType
from typing import Any, NoReturn

import optuna

from autotweak._quiet import quiet_optuna
from autotweak._signals import keep_lost_interrupts, sigterm_as_ctrl_c
from autotweak.engine._budget import (
    BudgetView,
    ask_lock,
    close_connections,
    hold_connections,
    sampler_exhausted,
)
from autotweak.engine._dropped import at_exit_of, made, newest, release, say_closed_at_exit
from autotweak.engine._loop import FAIL_FAST, FailFast
from autotweak.engine._lost_retries import worker_sweeper
from autotweak.engine._none_completed import say_if_none_completed
from autotweak.engine._opening import drop_new_study
from autotweak.engine._optimize import _close, _result_of
from autotweak.engine._prepare import Prepared, as_experiment, prepare
from autotweak.engine._session import REQUEUED, Outcome, TrialSession
from autotweak.engine._steps import StepsCheck
from autotweak.engine._told import check_told, interrupt, still_open, told_outcome
from autotweak.engine._trial import Trial
from autotweak.engine._unreachable import heartbeat
from autotweak.engine._worker import outage_notice, session_seed
from autotweak.engine._writer import RecordWriter
from autotweak.exceptions import ArgumentError, AutotweakError, StudyInterrupted
from autotweak.spec import Experiment
from autotweak.spec._components import build_pruner, build_sampler
from autotweak.tracking import StudySummary

__all__ = ["Study"]

_log = logging.getLogger(__name__)

_RESUME = "autotweak.Study(..., resume=True)"
# A Study's fail-fast stop, as its training loop meets it (a worker of optimize says it in workers).
_ASK_STOPPED = (
    f"ask() returned None once the first {FAIL_FAST} trials it gave had failed, not to spend the budget "
    "on one error"
)


class Study:
    """A study driven by your own loop: ``ask`` for a trial, train, ``tell`` the result.

    ``experiment`` is an :class:`~autotweak.spec.Experiment`, its mapping form or the path
    of its YAML file. An exception that leaves the ``with`` block fails the trials still
    open with its type, message and traceback, and closes the study as interrupted; Ctrl-C
    (``KeyboardInterrupt``, or SIGTERM) instead records them as interrupted and queues them
    to run again with the same config, then raises
    :class:`~autotweak.exceptions.StudyInterrupted` (a ``KeyboardInterrupt``) that says how
    many and how to resume, as ``optimize`` does. Without ``with``, :meth:`close` called
    while a Ctrl-C is handled (in a ``finally`` or an ``except KeyboardInterrupt``) does the
    same, and a study the script never closed is closed as the interpreter exits, its open
    trials queued again; SIGTERM is routed to Ctrl-C from the study's creation to its close.
    Once closed, the study refuses :meth:`ask` and :meth:`tell`; a second :meth:`close`
    returns the same summary.

    As a worker under ``optimize`` does, :meth:`ask` returns ``None`` once the first 5
    trials of this object all failed (told ``nan``, or ``state="failed"``) and none
    completed: a broken training loop does not spend the whole budget on the same error.

    Example:
        >>> with Study(experiment) as study:  # doctest: +SKIP
        ...     while (trial := study.ask()) is not None:
        ...         for epoch in range(1, 31):
        ...             score = train_one_epoch(trial.config)
        ...             trial.report(score, step=epoch)
        ...             if trial.should_prune():
        ...                 study.tell(trial, state="pruned")
        ...                 break
        ...         else:
        ...             study.tell(trial, score)
    """

    def __init__(
        self,
        experiment: Experiment | Mapping[str, Any] | str | os.PathLike[str],
        *,
        resume: bool = False,
        track: bool = True,
    ) -> None:
        experiment = as_experiment(experiment, check_objective=False)
        self._sigterm = ExitStack()  # a scheduler's SIGTERM closes it as Ctrl-C does, or stops its opening
        self._sigterm.enter_context(sigterm_as_ctrl_c())
        try:
            with keep_lost_interrupts(put_back=True):  # one that lands in a finalizer as the stores open
                self._prepared: Prepared = prepare(experiment, resume=resume, track=track, runs_trials=True)
                hold_connections(self._prepared.context.storage_url)  # until close: see close_connections
                self._load(experiment, resume=resume)
        except BaseException:
            self._sigterm.close()
            raise
        self._made = made(self._prepared.context.storage_url, experiment.name)  # see _at_exit
        self._exit_hook = at_exit_of(self)  # weakly: a study the program drops goes (see __del__)
        atexit.register(self._exit_hook)  # after the writer's: it runs first, with the writer still open

    def _load(self, experiment: Experiment, *, resume: bool) -> None:
        """The prepared study loaded with its sampler and pruner; a new one cut short here is deleted."""
        try:
            self._load_prepared(experiment)
        except BaseException:
            prepared = self._prepared
            if not resume:  # nothing ran: a rerun must not find it ("already exists")
                drop_new_study(
                    experiment.name, prepared.storage, prepared.tracker, prepared.context.study_run_id
                )
            prepared.tracker.close()
            close_connections(prepared.storage, prepared.context.storage_url)  # the ask lock's too, if last
            raise

    def _load_prepared(self, experiment: Experiment) -> None:
        """The study's sampler, pruner and trial session, and this object's bookkeeping."""
        ctx = self._prepared.context
        tracker = self._prepared.tracker
        self._storage = self._prepared.storage
        # A reopened study draws a new stream: the first session's seed would propose its configs again.
        seed = session_seed(
            self._storage, ctx.storage_url, experiment.name, experiment.seed, ctx.worker_index
        )
        self._study = optuna.load_study(
            study_name=experiment.name,
            storage=self._storage,
            sampler=build_sampler(experiment.sampler, experiment.space, seed),
            pruner=build_pruner(experiment.pruner, experiment.metric),
        )
        self._session = TrialSession(ctx, self._study, tracker, seed)  # the seed the sampler draws from
        self._sweep = worker_sweeper(self._study, tracker, ctx.storage_url, experiment)
        name = experiment.name  # not self: a study the program drops is freed at once, not by the collector
        self._steps_check = StepsCheck(  # reports that disagree with metric.steps, said once per study
            self._prepared.experiment, self._study, lock=lambda: ask_lock(ctx.storage_url, name)
        )
        self._open: dict[int, tuple[Trial, float, ExitStack]] = {}
        self._asked = 0  # trials this object's ask() returned
        self._fail_fast = FailFast()
        self._stopped_said = False
        self._requeued_dropped = 0  # records of trials queued again that the tracker did not take (down)
        self._summary: StudySummary | None = None
        self._closed = self._dropped = False  # _dropped: see __del__
        self._writer = RecordWriter(  # see tell()
            threaded=lambda: tracker.threaded_writes,
            unreachable=tracker.unreachable,
            on_change=outage_notice(self._study, ctx),
        )

    @property
    def experiment(self) -> Experiment:
        """The experiment this study runs."""
        return self._prepared.experiment

    @property
    def optuna_study(self) -> optuna.Study:
        """The underlying Optuna study."""
        return self._study

    def ask(self) -> Trial | None:
        """A new trial, or ``None`` once the budget is spent (or this object's first 5 trials failed).

        Raises:
            AutotweakError: If the study is closed.
        """
        self._check_open()
        if self._fail_fast.tripped:
            self._say_stopped()
            return None
        self._sweep()
        ctx = self._prepared.context
        with ask_lock(ctx.storage_url, self._study.study_name):
            view = BudgetView.read(
                self._study,
                self.experiment.metric.steps,
                need_compute=self.experiment.budget.compute is not None,
            )
            if view.exhausted(self.experiment.budget, ctx.deadline) or sampler_exhausted(self._study, view):
                return None
            with quiet_optuna():
                trial = self._study.ask()
        stack = ExitStack()  # the heartbeat first: a trial whose opening is cut short still goes stale
        stack.enter_context(
            heartbeat(self._storage, trial._trial_id, self.experiment.execution.heartbeat_interval)
        )
        try:
            handle = self._session.begin(trial, auto_prune=False, opener=self._writer.call)
        except BaseException:
            stack.close()
            raise
        self._open[trial.number] = (handle, time.monotonic(), stack)
        self._asked += 1
        return handle

    def _say_stopped(self) -> None:
        """Warn, once, of a stop the close does not warn of: trials of the study completed before."""
        if self._stopped_said:
            return
        self._stopped_said = True
        finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        if self._study.get_trials(deepcopy=False, states=finished):
            _log.warning(
                "study '%s': ask() takes no new trial: the first %d trials it gave in this Study failed "
                "(none completed). Fix the training loop, then resume the study: %s",
                self._study.study_name,
                FAIL_FAST,
                _RESUME,
            )

    def tell(
        self, trial: Trial, value: float | None = None, *, state: str = "complete", error: str | None = None
    ) -> None:
        """Finish ``trial``: ``state`` is ``"complete"`` (with a value), ``"pruned"`` or ``"failed"``.

        A non-finite value makes the trial failed, as it does under ``optimize``. Optuna
        knows the outcome on return. Where a background write overlaps your loop (a
        tracking server, or the helper process that writes the records of short trials),
        the trial's MLflow run is closed on a background thread; :meth:`flush` and
        :meth:`close` wait for every run to be closed.

        Raises:
            ArgumentError: If ``trial`` is not a trial of this class, ``state`` is unknown,
                or ``value`` is not a number (or is missing for ``"complete"``).
            AutotweakError: If the study is closed, or ``trial`` is not one this study's
                :meth:`ask` returned and has not told yet.
        """
        self._check_open()
        check_told(value, state)
        self._check_asked(trial)
        self._finish(trial.number, told_outcome(trial, value, state, error))

    def _check_open(self) -> None:
        if self._closed:
            raise AutotweakError(
                f"study '{self._study.study_name}' is closed; reopen it with "
                "autotweak.Study(..., resume=True)."
            )

    def _check_asked(self, trial: object) -> None:
        """Refuse anything but a handle this object's :meth:`ask` returned and that is still open."""
        if not isinstance(trial, Trial):
            raise ArgumentError(f"tell() takes a trial from this study's ask(), got {trial!r}.")
        held = self._open.get(trial.number)
        if held is not None and held[0] is trial:
            return
        owner = trial.optuna_trial.study
        if owner is not self._study:
            mine = self._study.study_name
            other = f"study '{owner.study_name}'"
            if owner.study_name == mine:
                other = f"another Study object of study '{mine}'"
            raise AutotweakError(
                f"trial {trial.number} was asked from {other}, not from study '{mine}'; "
                "tell it to the Study whose ask() returned it."
            )
        raise AutotweakError(f"trial {trial.number} is not open in this study (told twice?).")

    def _finish(self, number: int, outcome: Outcome) -> None:
        handle, started, stack = self._open.pop(number)
        stack.close()
        outcome = self._session.tell(handle, outcome)
        self._fail_fast.told(outcome.state)
        duration = time.monotonic() - started
        if outcome.state == "complete":
            self._steps_check(number, [step for step, _ in handle.steps])
        if outcome.state in REQUEUED:  # queued again before the study closes, as a worker does
            down = self._session.record_requeued(handle, outcome, duration, self._writer.call)
            self._requeued_dropped += down is not None
            return
        self._writer.submit(
            lambda: self._session.record(handle, outcome, duration), f"the record of trial {number}"
        )

    def flush(self) -> None:
        """Wait until the MLflow runs of every trial told so far are closed, or failed to close.

        A run the tracker could not close is said in a warning, not raised (Optuna already
        holds the outcome): it stays open in MLflow until :meth:`close` closes it from
        Optuna's record.
        """
        self._writer.wait()

    def close(self) -> StudySummary:
        """Fail trials still open, wait for every record, write the summary and close the study's record.

        Closing a closed study does nothing and returns the summary of the first close.

        Raises:
            StudyInterrupted: If called while a Ctrl-C (or SIGTERM) is being handled, as in the
                ``finally`` of a loop it stopped: the study is closed as the ``with`` block
                closes it then, its open trials queued again.
        """
        if not self._closed and isinstance(sys.exc_info()[1], KeyboardInterrupt):
            self._raise_interrupted()
        return self._close_with(still_open)

    def _raise_interrupted(self) -> NoReturn:
        """Close the study as interrupted, its open trials queued again, and say so as optimize does."""
        summary = self._close_with(interrupt, interrupted=True)
        result = _result_of(self._prepared, summary, stop_reasons=["interrupted"], trials_run=self._asked)
        raise StudyInterrupted(result, resume=_RESUME) from None  # as optimize raises it: what to run

    def _at_exit(self) -> None:
        """A study the script never closed (or dropped): its trials still open were cut short, requeued."""
        if self._closed:
            return
        if self._dropped:  # its finalizer released its connections: this close reconnects, and ends them
            hold_connections(self._prepared.context.storage_url)
        cut, name, settle = len(self._open), self._study.study_name, newest(self._made)
        try:  # not settle: a newer Study of this name (a notebook cell run again) settles the record
            self._close_with(interrupt, interrupted=bool(cut), settle=settle)
        except Exception as exc:  # its stores may be gone already: say so in a line, not a traceback
            _log.warning("study '%s' was not closed, and could not be as Python exits: %s", name, exc)
            return
        say_closed_at_exit(name, cut, resume=_RESUME, dropped=self._dropped, settled=settle)

    def _close_with(
        self, open_trials: Callable[[Trial], Outcome], *, interrupted: bool = False, settle: bool = True
    ) -> StudySummary:
        """Close the study; each trial still open ends as ``open_trials`` says; ``settle``: its record too."""
        if not self._closed:
            self._closed = True
            try:
                for number, (handle, _, _) in list(self._open.items()):
                    try:
                        self._finish(number, open_trials(handle))
                    except Exception:  # one trial's record must not leave the others (or the study) open
                        _log.warning("could not finish trial %d as the study closed", number, exc_info=True)
                self._writer.close()
                dropped = self._writer.dropped + self._requeued_dropped
                close = settle and _close(self._prepared, interrupted=interrupted, dropped=dropped)
                self._summary = close or self.summary  # not settled: read while the storage is open
                if not interrupted and self._asked:  # as optimize says it of a study whose trials all failed
                    say_if_none_completed(
                        self._study,
                        self._summary,
                        stopped=_ASK_STOPPED if self._fail_fast.tripped else "",
                        fix="the training loop",
                        resume=_RESUME,
                    )
            finally:
                self._prepared.tracker.close()
                close_connections(self._storage, self._prepared.context.storage_url)
                self._sigterm.close()
                atexit.unregister(self._exit_hook)
        return self.summary

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        """A study dropped unclosed: a ``ResourceWarning``, its connections released; closed at exit."""
        if self.__dict__.get("_closed", True) or "_exit_hook" not in self.__dict__ or self._dropped:
            return  # closed, never opened, or dropped before (then kept alive by atexit, to exit)
        self._dropped = True
        atexit.unregister(self._exit_hook)
        self._exit_hook = self._at_exit  # held strongly: kept alive (PEP 442), closed in full as Python exits
        atexit.register(self._exit_hook)  # first: a ResourceWarning made an error leaves it registered
        release(
            self._prepared,
            writer=self._writer,
            sigterm=self._sigterm,
            heartbeats=[stack for _, _, stack in self._open.values()],
            source=self,
            warn=_warn,
        )

    def __enter__(self) -> Study:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:  # not close(): a Ctrl-C an enclosing handler is handling is not this block's
            self._close_with(still_open)
        elif isinstance(exc, KeyboardInterrupt):
            self._raise_interrupted()
        else:  # kept as optimize keeps an objective's exception: failure tag and traceback.txt
            failure = f"{type(exc).__name__}: {exc}"
            text = "".join(traceback.format_exception(exc_type, exc, tb))
            self._close_with(lambda _: Outcome("failed", None, failure, text), interrupted=True)

    @property
    def summary(self) -> StudySummary:
        """Counts by state and the best trial so far."""
        from autotweak.engine._summary import summarize

        return self._summary or summarize(self._study)

    def __repr__(self) -> str:
        return f"Study(name={self.experiment.name!r})"
