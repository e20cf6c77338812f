"""The stale-trial sweep: trials whose worker stopped writing heartbeats are failed and run again."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from autotweak._optuna_private import (
    BaseHeartbeat,
    heartbeat_ages,
    is_heartbeat_enabled,
    stale_trial_ids,
    unbeating_trial_ids,
)
from autotweak._quiet import quiet_optuna
from autotweak.engine._contact import CONTACT
from autotweak.engine._retries import attempt_left
from autotweak.engine._storage import rdb_backend
from autotweak.engine._study import ATTR

__all__ = ["LOST_MACHINE", "LOST_WORKER", "RetryingStaleHandler", "StaleSweeper", "fail_stale"]

_log = logging.getLogger(__name__)


def _grace(storage: BaseHeartbeat) -> float:
    """The grace period of ``storage``, as Optuna's sweep reads it."""
    backend = rdb_backend(storage) if isinstance(storage, BaseStorage) else None
    if backend is None:
        return 0.0
    return float(backend.grace_period or 2 * (backend.heartbeat_interval or 0))


LOST_WORKER = "worker lost: no heartbeat within the grace period"
LOST_MACHINE = "preempted: its spot machine went away without a notice (no heartbeat within the grace period)"


class RetryingStaleHandler:
    """A stale-trial callback that queues each trial it is given to run again while ``max_retries`` last.

    The sweep asks it (:meth:`runs_again`) before it fails a trial, to mark one that will
    run again (:attr:`ATTR.RUNS_AGAIN <autotweak.engine._study.ATTR>`) while it still runs:
    the callback closes its record between its failure and its retry, and a progress count
    read in between would count it, then its retry in its place, one less (``done 5/10``,
    then ``4/10``). Any other callback (Optuna's own, none) leaves the trial unmarked.

    Args:
        on_stale: Closes the trial's record and queues it again (see
            :func:`~autotweak.engine._retries.requeue`, with ``max_retries``).
        max_retries: The retries of the study's experiment.
    """

    def __init__(self, on_stale: Callable[[optuna.Study, FrozenTrial], None], max_retries: int) -> None:
        self._on_stale = on_stale
        self.max_retries = max_retries

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._on_stale(study, trial)

    def runs_again(self, user_attrs: Mapping[str, Any]) -> bool:
        """Whether a stale trial (``user_attrs``: its own) is queued to run again once failed."""
        return attempt_left(user_attrs, self.max_retries) or bool(user_attrs.get(ATTR.INTERRUPTED))


def fail_stale(study: optuna.Study) -> None:
    """Fail trials whose worker stopped beating, running the stale-trial callback.

    As Optuna's ``fail_stale_trials``, except that each trial says why it failed (its
    failure attribute is written while it is still running: a finished trial's cannot be),
    so that progress lines and reports show the reason, not a bare "fail".

    A trial its worker marked as run on a spot machine (:attr:`ATTR.RECLAIMABLE
    <autotweak.engine._study.ATTR>`) is failed as *preempted*: EC2 reclaims spot capacity
    without the two-minute notice at times, and the trial's objective is not at fault.
    Elsewhere (local worker processes, a machine of one's own) a lost worker stays a
    failure: it died of the trial itself as often as not (the OOM killer), and the search
    should count it against the objective. Both are queued again while ``max_retries`` last.

    Nothing is failed until the storage has answered this process for a grace period since
    it last found it unreachable: no worker could write a heartbeat meanwhile (see
    :data:`~autotweak.engine._contact.CONTACT`). In its first grace period, a process that
    has seen no outage (a resume's opening sweep, a new worker's) cannot tell whether one
    ended just before it started; it fails only the trials that are surely lost (see
    :func:`_surely_lost`), and the rest once the grace period is over.
    """
    storage = study._storage
    if not isinstance(storage, BaseHeartbeat) or not is_heartbeat_enabled(storage):
        return
    with quiet_optuna():
        stale = stale_trial_ids(storage, study._study_id)
        CONTACT.reached()  # this query may be the first to go through after an outage
        grace = _grace(storage)
        if not CONTACT.steady(grace):
            backend = rdb_backend(storage)
            if CONTACT.saw_outage() or backend is None:
                return
            stale = _surely_lost(backend, stale, grace)
        callback = storage.get_heartbeat_stale_trial_callback()
        failed = [trial_id for trial_id in stale if _fail_lost(storage, trial_id, callback)]
    if callback is not None:
        for trial_id in failed:
            callback(study, copy.deepcopy(storage.get_trial(trial_id)))


def _surely_lost(storage: RDBStorage, stale: list[int], grace: float) -> list[int]:
    """The ``stale`` trials that no outage just before this process started can explain.

    Such an outage leaves every running trial of the storage without a heartbeat in the
    last grace period, until their workers beat again. So a trial is surely lost only if
    some running trial, of any study in the storage, has beaten within the grace period
    (the storage answers heartbeats) and its own heartbeat is older than twice the grace
    period (its worker has missed at least one more whole grace period of them). A resume
    long after the study's processes died, beside a study running on the same storage,
    fails their trials at once; right after its processes died, or alone on its storage,
    a grace period later.
    """
    if not stale:
        return []
    ages = heartbeat_ages(storage.engine)
    if not any(age <= grace for age in ages.values()):
        return []  # nobody beats: an outage just ended, or every worker is gone; judged later
    return [trial_id for trial_id in stale if ages.get(trial_id, 0.0) > 2 * grace]


def _fail_lost(storage: BaseStorage, trial_id: int, callback: object) -> bool:
    """Fail a running trial whose worker was lost; ``False`` if it finished, or was failed elsewhere, first.

    Its reason is written while it still runs; one run on a spot machine is marked preempted,
    and one that ``callback`` (the storage's stale-trial callback) will queue again is marked
    so (see :class:`RetryingStaleHandler`).
    """
    try:
        reason = LOST_WORKER
        attrs = storage.get_trial(trial_id).user_attrs
        if attrs.get(ATTR.RECLAIMABLE):
            storage.set_trial_user_attr(trial_id, ATTR.PREEMPTED, True)
            reason = LOST_MACHINE
        storage.set_trial_user_attr(trial_id, ATTR.FAILURE, reason)
        if isinstance(callback, RetryingStaleHandler) and callback.runs_again(attrs):
            storage.set_trial_user_attr(trial_id, ATTR.RUNS_AGAIN, True)
        return bool(storage.set_trial_state_values(trial_id, state=TrialState.FAIL))
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


class StaleSweeper:
    """Runs :func:`fail_stale` at most once per ``every`` seconds (it costs a query).

    It also fails *orphans*: running trials that never recorded a heartbeat, which Optuna's
    sweep skips. A worker makes one when it dies, or its connection drops, between creating
    the trial (``ask``) and its first heartbeat; nobody runs it, and a study waiting for its
    running trials would wait forever. A trial this sweeper sees without a heartbeat for
    the storage's whole grace period, on its own clock, is failed like a stale one (the
    stale-trial callback runs, so it is recorded and retried).

    ``then``, if given, runs after each sweep: a worker queues there the retries that a
    process killed in its own sweep left unqueued (see
    :func:`~autotweak.engine._lost_retries.queue_marked_retries`).
    """

    def __init__(self, study: optuna.Study, every: float, then: Callable[[], object] | None = None) -> None:
        self.study = study
        self.every = every
        self.then = then
        self._last = float("-inf")
        self._unbeating: dict[int, float] = {}

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self._last >= self.every:
            fail_stale(self.study)
            self._fail_orphans(now)
            if self.then is not None:
                self.then()
            self._last = now  # once it went through: a sweep cut by a dropped connection is done again

    def _fail_orphans(self, now: float) -> None:
        storage = self.study._storage
        backend = rdb_backend(storage)
        if backend is None or not is_heartbeat_enabled(backend):
            return
        seen = unbeating_trial_ids(backend.engine, self.study._study_id)
        CONTACT.reached()
        grace = _grace(backend)
        steady = CONTACT.steady(grace)
        if not steady and CONTACT.saw_outage():
            return  # their workers could not beat while the storage was down: judged once it is steady
        self._unbeating = {tid: self._unbeating.get(tid, now) for tid in seen}
        if not steady:
            return  # this process has just started: an outage may have ended just before
        callback = backend.get_heartbeat_stale_trial_callback()
        for tid in [tid for tid, since in self._unbeating.items() if now - since >= grace]:
            del self._unbeating[tid]
            if not _fail_lost(storage, tid, callback):
                continue  # it finished, or another worker failed it first
            trial = storage.get_trial(tid)
            _log.warning(
                "trial %d never sent a heartbeat in %.0f s: its worker was lost", trial.number, grace
            )
            if callback is not None:
                callback(self.study, copy.deepcopy(trial))
