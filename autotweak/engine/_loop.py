"""The trial loop of one worker: ask, run the objective, tell, record, while the budget lasts.

:func:`~autotweak.engine._worker.run_worker` sets up a worker (its storage, sampler and
tracker) and hands it to this loop; Ctrl-C is held off the writes to the stores here.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TypeVar

import optuna

from autotweak._quiet import quiet_optuna
from autotweak._validation import score_of
from autotweak.engine._budget import BudgetView, ask_lock, open_ask_lock, sampler_exhausted
from autotweak.engine._lost_retries import worker_sweeper
from autotweak.engine._preemption import NoticeWatcher, TrialPreempted
from autotweak.engine._retries import INTERRUPTED_FAILURE, ask_reclaimable, mark_interrupted
from autotweak.engine._session import REQUEUED, Outcome, TrialSession, WorkerContext
from autotweak.engine._steps import StepsCheck
from autotweak.engine._trial import Trial, TrialPruned
from autotweak.engine._unreachable import StorageUnreachableError, heartbeat, retrying
from autotweak.engine._writer import RecordWriter
from autotweak.tracking import BaseTracker

__all__ = ["FAIL_FAST", "FAIL_FAST_REASON", "FailFast", "WorkerResult", "interrupted_outcome"]

_log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class WorkerResult:
    """What one worker did."""

    trials: int = 0
    stop_reason: str = ""
    interrupted: bool = False
    error: str | None = None  # set when the worker itself failed: its exception, or how its process ended
    last_trial: int | None = None  # a failed worker's last trial (its Optuna id), which may be left running
    killed: bool = False  # ended by SIGKILL while not told to stop: the kernel's OOM killer, most likely
    replaced: bool = False  # its process died, and another took its place: the study did not stop with it
    records_dropped: int = 0  # trial records not written to the tracker: it did not answer
    tracker_down: str | None = None  # why, as the tracker said

    @property
    def crashed(self) -> bool:
        """Whether the worker failed (rather than stopping for a budget, a notice or Ctrl-C)."""
        return self.error is not None


@dataclass
class _Interrupts:
    """Ctrl-C interrupts the user's code only, never a write to the stores.

    Outside the objective, and inside autotweak calls made from it (``report``), the
    interrupt is held until the write is done; the loop then records the trial as
    interrupted and stops.
    """

    in_objective: bool = False
    stop_requested: bool = False
    depth: int = 0
    pending: bool = False
    raised: bool = False
    previous: Any = field(default=None, repr=False)

    def enter_objective(self) -> None:
        """The user's code starts: the next Ctrl-C may interrupt it (once)."""
        self.raised = False
        self.pending = False
        self.in_objective = True

    def handler(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested = True
        if not self.in_objective or self.raised:
            return  # a second Ctrl-C must not cut the recording of the first one
        if self.depth == 0:
            self.raised = True
            raise KeyboardInterrupt
        self.pending = True

    @contextmanager
    def critical(self) -> Iterator[None]:
        """A section that an interrupt must not cut in half."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if self.depth == 0 and self.pending and self.in_objective and not self.raised:
                self.pending = False
                self.raised = True
                raise KeyboardInterrupt

    @contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        self.previous = signal.signal(signal.SIGINT, self.handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, self.previous)


# A worker whose first trials all fail stops: the objective is broken (a typo, a missing
# file), and running the rest of the budget would only repeat the error.
FAIL_FAST = 5
FAIL_FAST_REASON = f"its first {FAIL_FAST} trials failed"


@dataclass
class FailFast:
    """The rule above, for one session: a worker's loop, or an ask/tell ``Study``."""

    failed_first: int = 0  # the session's trials that failed before any of its own completed
    completed: bool = False

    def told(self, state: str) -> None:
        """Count a trial of the session, told ``state``."""
        self.completed = self.completed or state == "complete"
        self.failed_first += state == "failed"

    @property
    def tripped(self) -> bool:
        """Whether the session should take no new trial."""
        return not self.completed and self.failed_first >= FAIL_FAST


class _Loop:
    def __init__(
        self,
        ctx: WorkerContext,
        study: optuna.Study,
        storage: Any,
        tracker: BaseTracker,
        objective: Callable[[dict[str, Any], Trial], Any],
        seed: int | None,
        watcher: NoticeWatcher,
        writer: RecordWriter,
    ) -> None:
        self.ctx = ctx
        self.experiment = ctx.experiment
        self.study = study
        self.storage = storage
        self.tracker = tracker
        self.objective = objective
        self.watcher = watcher
        self.writer = writer
        self.session = TrialSession(ctx, study, tracker, seed, notice=watcher.notice.is_set)
        self.sweep = worker_sweeper(study, tracker, ctx.storage_url, ctx.experiment)
        self.on_trial: Callable[[int], None] | None = None
        self.fail_fast = FailFast()
        self.requeued_dropped = 0  # records of trials queued again that the tracker did not take (down)
        self.tracker_down: str | None = None
        self.steps_check = StepsCheck(
            ctx.experiment, study, lock=lambda: ask_lock(ctx.storage_url, study.study_name)
        )

    def run(self, interrupts: _Interrupts) -> WorkerResult:
        result = WorkerResult()
        # Connections and first queries outside the ask lock, which workers starting together queue for.
        self._retrying(lambda: open_ask_lock(self.ctx.storage_url), "connecting to the storage")
        self._retrying(self._view, "reading the budget")
        while not interrupts.stop_requested:
            reason = self._next_or_reason(interrupts, result)
            if reason:
                result.stop_reason = reason
                break
        if interrupts.stop_requested:
            result.interrupted = True
            result.stop_reason = result.stop_reason or "interrupted"
        return result

    def _next_or_reason(self, interrupts: _Interrupts, result: WorkerResult) -> str | None:
        if self.watcher.notice.is_set():
            return "preempted"  # the machine is going away: take no new trial
        if self.fail_fast.tripped:
            return FAIL_FAST_REASON  # a broken objective: fix it, then resume
        self._retrying(self.sweep, "looking for stale trials")
        view, reason, trial = self._retrying(self._ask, "asking for a trial")
        if reason is not None:
            if reason == "trials" and view.running and self._wait_for_running():
                return None
            return reason
        assert trial is not None  # no reason to stop means a trial was asked for
        if self.on_trial is not None:
            self.on_trial(trial._trial_id)
        result.trials += 1
        self._run_trial(trial, interrupts)
        return None

    def _retrying(self, func: Callable[[], T], what: str) -> T:
        """``func``, retried while the study's storage is unreachable."""
        return retrying(func, what, store=self.ctx.storage_url)

    def _ask(self) -> tuple[BudgetView, str | None, optuna.Trial | None]:
        with ask_lock(self.ctx.storage_url, self.study.study_name):
            view = self._view()
            reason = view.exhausted(self.experiment.budget, self.ctx.deadline) or sampler_exhausted(
                self.study, view
            )
            if reason is not None:
                return view, reason, None
            with quiet_optuna():
                if self.watcher.endpoint:  # a spot machine, which may go away without its notice
                    return view, None, ask_reclaimable(self.study)
                return view, None, self.study.ask()

    def _view(self) -> BudgetView:
        return BudgetView.read(
            self.study, self.experiment.metric.steps, need_compute=self.experiment.budget.compute is not None
        )

    def _wait_for_running(self) -> bool:
        """Trials run elsewhere: wait a heartbeat, so that a dead worker's trial is retried here."""
        if self.ctx.deadline is not None and time.time() >= self.ctx.deadline:
            return False
        time.sleep(self.experiment.execution.heartbeat_interval)
        return True

    def _run_trial(self, trial: optuna.Trial, interrupts: _Interrupts) -> None:
        interrupted = False
        # The heartbeat starts before anything else: a worker killed while opening the trial's
        # record (an MLflow round trip) must still leave a trial that goes stale, or the
        # study would wait for it forever.
        with heartbeat(self.storage, trial._trial_id, self.experiment.execution.heartbeat_interval):
            handle = self._retrying(
                lambda: self.session.begin(trial, critical=interrupts.critical, opener=self.writer.call),
                "starting a trial",
            )
            started = time.monotonic()
            interrupts.enter_objective()
            try:
                if interrupts.stop_requested:  # it came while the trial was asked for or opened
                    raise KeyboardInterrupt
                outcome = _evaluate(self.objective, handle.config, handle, self.experiment.metric.name)
            except KeyboardInterrupt:
                outcome = interrupted_outcome(handle)
                interrupted = True
            finally:
                interrupts.in_objective = False
        duration = time.monotonic() - started
        if interrupted:
            self._retrying(lambda: mark_interrupted(trial), "marking the trial as interrupted")
        told = self._retrying(lambda: self.session.tell(handle, outcome), "telling the trial's result")
        self.fail_fast.told(told.state)
        if told.state == "complete":
            self.steps_check(trial.number, [step for step, _ in handle.steps])
        if told.state in REQUEUED:  # queues it again before this worker stops
            self._record_requeued(handle, told, duration)
        else:
            self.writer.submit(
                lambda: self.session.record(handle, told, duration), f"the record of trial {trial.number}"
            )
        if interrupted:
            interrupts.stop_requested = True

    def _record_requeued(self, handle: Trial, told: Outcome, duration: float) -> None:
        """Queue the trial again and close its record; a record the tracker refuses does not end the worker.

        The trial is queued before its record is closed, so a tracker that is down loses
        nothing: the record is closed from Optuna's when the study ends, or opens again. One
        that does not answer is asked once, as the record writer does (Ctrl-C and a machine
        going away do not wait out its client's retries). A storage that stays unreachable
        still stops the worker (the trial may not be queued).
        """
        try:
            down = self.session.record_requeued(handle, told, duration, self.writer.call)
            if down is not None:
                self.requeued_dropped += 1
                self.tracker_down = down
        except StorageUnreachableError:
            raise
        except Exception:
            _log.warning(
                "could not write the record of trial %d; it is closed from Optuna's record when the study "
                "ends",
                handle.number,
                exc_info=True,
            )


def interrupted_outcome(handle: Trial) -> Outcome:
    """Ctrl-C stops the trial as a preemption does: its record is kept and it is queued again.

    The trial carries :attr:`ATTR.INTERRUPTED <autotweak.engine._study.ATTR>`, so that it
    is told apart from a failure (and from a preemption) in summaries.
    """
    return Outcome("interrupted", _last_value(handle), INTERRUPTED_FAILURE)


def _evaluate(
    objective: Callable[[dict[str, Any], Trial], Any], config: dict[str, Any], handle: Trial, metric: str
) -> Outcome:
    try:
        raw = objective(config, handle)
    except TrialPruned:
        return Outcome("pruned", _last_value(handle))
    except TrialPreempted as exc:
        return Outcome("preempted", _last_value(handle), f"preempted: {exc}")
    except StorageUnreachableError as exc:  # not the objective's fault: run it again, as a preempted trial
        return Outcome("preempted", _last_value(handle), f"lost: {exc}; queued to run again")
    except Exception as exc:
        return Outcome("failed", None, f"{type(exc).__name__}: {exc}", traceback.format_exc())
    except SystemExit as exc:  # sys.exit() in a training script (argparse on a bad flag, say)
        reason = f"SystemExit: the objective called sys.exit({exc.code!r})"
        return Outcome("failed", None, reason, traceback.format_exc())
    value = score_of(raw)
    if value is None:
        return Outcome("failed", None, _not_a_number(raw, metric))
    if not math.isfinite(value):
        return Outcome(
            "failed", None, f"the objective returned {metric}={value}, which is not a finite number"
        )
    return Outcome("complete", value)


def _not_a_number(raw: object, metric: str) -> str:
    """Why ``raw`` is no result: the objective returns the metric's value, a plain number."""
    shown = repr(raw)
    shown = shown if len(shown) <= 40 else shown[:36] + " ..." + shown[-1]  # the hint must fit in a line
    message = f"the objective must return the metric '{metric}' as a number, got {shown}"
    if isinstance(raw, Mapping):
        found = f"return its '{metric}' value" if metric in raw else f"it has no '{metric}' key"
        message += f" (a mapping: {found})"
    elif raw is None:
        message += " (a missing return statement?)"
    return message


def _last_value(handle: Trial) -> float | None:
    """The last value the trial reported, if any."""
    return handle.steps[-1][1] if handle.steps else None
