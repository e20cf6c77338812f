"""Worker processes that died: their trials failed at once, with why, and whether another takes their place.

A process that runs worker processes (:class:`~autotweak.engine.ProcessExecutor`, for
``optimize`` and ``autotweak worker``) sees one end as it ends. Its trial is failed then,
as the config's failure, not a grace period later by another worker's stale-trial sweep
as a lost worker; a process that died in a trial (killed by a signal: the kernel's OOM
killer, a crash in native code; or ended with no result: ``os._exit``, a native library's
``exit()``) is replaced while the study's fail-fast rule allows.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from autotweak.engine._killed import CRASHED, killed_before, killed_reason, oom_kills
from autotweak.engine._loop import FAIL_FAST, WorkerResult
from autotweak.engine._lost_trials import settle_crashed
from autotweak.engine._preemption import machine_name
from autotweak.engine._session import WorkerContext
from autotweak.engine._storage import make_storage
from autotweak.engine._unreachable import retrying
from autotweak.engine._worker import make_tracker
from autotweak.spec import Experiment
from autotweak.tracking import BaseTracker

__all__ = ["CrashSettler", "settle_crashed_workers"]

_log = logging.getLogger(__name__)

_RAN = (TrialState.COMPLETE, TrialState.PRUNED)  # trials whose objective ran through


def settle_crashed_workers(
    study: optuna.Study,
    tracker: BaseTracker,
    experiment: Experiment,
    results: list[WorkerResult],
    *,
    oom: bool | None = None,
) -> None:
    """Fail the trials that failed workers left running, and queue them again, as a stale-trial sweep would.

    Their workers are gone, which this process knows without waiting for a grace period;
    left running, they would stay so until a resume, and the study's retries with them.

    A worker process killed by SIGKILL while this one lives (the machine did not go away:
    the kernel's OOM killer, most likely, which ``oom`` says where known) fails its trial
    as the config's own failure, never as a preemption, naming the machine
    (:func:`~autotweak.engine._killed.killed_reason`), and its worker's error says so too.
    It is run again once at most: a first kill may come from memory that earlier trials
    of the same process held, and the retry runs in a fresh process; a second one is the
    config's.
    """
    for result in results:
        if not result.crashed or result.last_trial is None:
            continue
        reason, retries = f"{CRASHED}{result.error}", experiment.execution.max_retries
        if result.killed:
            reason = killed_reason(oom, machine_name())
            retries = 0 if killed_before(study, result.last_trial) else retries
            result.error = f"{result.error}: {reason}"
        settle_crashed(
            study, tracker, result.last_trial, reason, metric=experiment.metric.name, max_retries=retries
        )


class CrashSettler:
    """Settles the trials of crashed workers, with a study and a tracker opened the first time one is needed.

    It also keeps the study's fail-fast rule across worker processes: a worker process that
    died (killed by a signal, or ended by ``os._exit``) is replaced unless
    :data:`~autotweak.engine._loop.FAIL_FAST` of them died before any trial ran through
    (completed or pruned) since it started (every config running out of memory, say), as a
    worker whose first trials all fail stops. Once one has, every dead process is replaced:
    each death fails a trial of the budget (run again within its retries), so the study
    still ends.

    Args:
        experiment: The study's experiment.
        open_study: Opens the study (called once, when a worker first crashes).
        tracking_uri: Where its trials are recorded (``None``: nowhere).
        tracker: The tracker of the process that runs the workers, which has one open (then
            it is neither made again nor closed here); else one is made on first use.
    """

    def __init__(
        self,
        experiment: Experiment,
        open_study: Callable[[], optuna.Study],
        tracking_uri: str | None,
        *,
        tracker: BaseTracker | None = None,
    ) -> None:
        self.experiment = experiment
        self.tracking_uri = tracking_uri
        self._open_study = open_study
        self._study: optuna.Study | None = None
        self._tracker = tracker
        self._owns_tracker = tracker is None
        self._oom_kills = oom_kills()  # before the workers start; read again as each one dies
        self._oom_unclaimed = 0  # OOM kills counted that no dead worker has been told of yet
        self._started = datetime.datetime.now()  # as Optuna dates trials
        self._ran = False  # whether a trial ran through since then
        self._deaths = 0  # worker processes that died before one did

    @classmethod
    def for_context(cls, ctx: WorkerContext) -> CrashSettler:
        """The settler of the study that ``ctx``'s workers run."""
        experiment, url = ctx.experiment, ctx.storage_url

        def open_study() -> optuna.Study:
            storage = retrying(lambda: make_storage(url), "opening the storage", store=url)
            return retrying(
                lambda: optuna.load_study(study_name=experiment.name, storage=storage),
                "loading the study",
                store=url,
            )

        return cls(experiment, open_study, ctx.tracking_uri)

    def study(self) -> optuna.Study:
        """The study, opened on first use."""
        if self._study is None:
            self._study = self._open_study()
        return self._study

    def tracker(self) -> BaseTracker:
        """The study's tracker, made on first use."""
        if self._tracker is None:
            self._tracker = make_tracker(self.tracking_uri)
        return self._tracker

    def settle(self, results: list[WorkerResult], *, oom: bool | None = None) -> None:
        """Settle the trials the crashed workers among ``results`` left running."""
        if any(r.crashed and r.last_trial is not None for r in results):
            settle_crashed_workers(self.study(), self.tracker(), self.experiment, results, oom=oom)

    def at_once(self, result: WorkerResult) -> None:
        """Settle one crashed worker's trial as soon as it is seen; what fails here is settled at the end."""
        oom = self._claim_oom_kill()
        try:
            self.settle([result], oom=oom)
            self._count_death()
        except Exception:
            _log.warning("could not settle the trial of a crashed worker yet", exc_info=True)
            return
        result.last_trial = None  # settled: not again at the end

    def _claim_oom_kill(self) -> bool | None:
        """Whether the kernel's OOM killer ended the worker process just seen dead (``None``: unknown).

        Two workers killed at once both show in the count read as the first is seen: each
        kill explains one death, the second's too.
        """
        before, self._oom_kills = self._oom_kills, oom_kills()
        if before is None or self._oom_kills is None:
            return None
        self._oom_unclaimed += self._oom_kills - before
        if self._oom_unclaimed <= 0:
            return False
        self._oom_unclaimed -= 1
        return True

    def may_replace(self, name: str) -> bool:
        """Whether a dead worker process (``name``) may be replaced, by the study's fail-fast rule."""
        if self._deaths < FAIL_FAST:
            return True
        _log.warning(
            "not starting a worker process in place of %s: %d worker processes died and no trial has run "
            "through, as a worker whose first %d trials fail stops",
            name,
            self._deaths,
            FAIL_FAST,
        )
        return False

    def close(self) -> None:
        if self._tracker is not None and self._owns_tracker:
            self._tracker.close()

    def _count_death(self) -> None:
        """Count a death against the fail-fast rule, until a trial of this run ran through."""
        if self._ran:
            return
        study = self.study()
        trials = study._storage.get_all_trials(study._study_id, deepcopy=False, states=_RAN)
        self._ran = any(t.datetime_complete and t.datetime_complete >= self._started for t in trials)
        self._deaths = 0 if self._ran else self._deaths + 1
