"""Queueing again the interrupted and preempted trials whose workers were killed before they did.

A worker tells an interrupted or preempted trial FAIL first, then keeps its checkpoint and
queues it to run again. Killed in between (SIGKILL at the end of a terminated instance's
shutdown, the OOM killer), it leaves a trial stopped through no fault of its own and no
retry: :func:`queue_lost_retries` queues it, as the worker would have, when the study
opens or closes (with the grace period: see :mod:`autotweak.engine._reconcile`).

A trial that the stale-trial sweep, or a dead worker process's watcher, marked to run again
and failed, and whose process died before it queued the retry, would wait for the next
opening so: a worker's periodic sweep queues it (:func:`queue_marked_retries`).

A marked trial whose retries a later session's smaller ``execution.max_retries`` spends is
not run again (:func:`~autotweak.engine._retries.requeue` says so). Each process says it
once, and its sweeps look no more at that trial (:data:`_REFUSED`).
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager

import optuna
import sqlalchemy
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from autotweak.engine._budget import ask_lock
from autotweak.engine._lost_trials import fail_lost_record
from autotweak.engine._reconcile import finished_before
from autotweak.engine._retries import attempt_left, requeue
from autotweak.engine._stale import LOST_WORKER, StaleSweeper
from autotweak.engine._storage import rdb_backend
from autotweak.engine._study import ATTR, state_of
from autotweak.spec import Experiment
from autotweak.tracking import BaseTracker

__all__ = ["queue_lost_retries", "queue_marked_retries", "unqueued", "worker_sweeper"]

_log = logging.getLogger(__name__)

# The marked trials this process found owed no retry, by storage URL: (trial id, when it
# finished; the time tells apart a trial id SQLite reuses once its study is deleted) to the
# max_retries that refused it (a later session of this process with more runs it again).
# Kept in the process, not the storage: a finished trial's attrs cannot be written, and a
# mark on the study would outlive the max_retries that refused it. So each process says the
# refusal once, and its sweeps (one per heartbeat interval) no longer take the ask lock for
# it: N workers say it N times per session.
_Key = tuple[int, datetime.datetime | None]
_REFUSED: dict[str, dict[_Key, int]] = {}


def queue_lost_retries(study: optuna.Study, tracker: BaseTracker, *, settle: float, max_retries: int) -> int:
    """Queue the interrupted and preempted trials that have no retry to run again; return how many.

    Their workers were killed between telling them and queueing them (see the module's
    documentation), as was the process that failed a dead worker's trial to run again
    (:func:`~autotweak.engine._lost_trials.settle_crashed`) if it did not queue it. Each
    retry carries what :func:`~autotweak.engine._retries.requeue` gives it, and resumes from
    the checkpoint the killed worker kept in the trial's own record (it keeps it there before
    it queues the retry), else from an earlier attempt's; an interrupted trial is queued
    whatever its attempt, a preempted one up to ``max_retries`` times.

    ``settle``: only trials finished at least this many seconds ago, whose workers, if still
    alive, have queued them by then.
    """
    trials = study.get_trials(deepcopy=False)
    lost = unqueued(trials, max_retries, among=finished_before(trials, settle))
    return _queue(study, tracker, lost, max_retries)


def queue_marked_retries(
    study: optuna.Study,
    tracker: BaseTracker,
    *,
    settle: float,
    max_retries: int,
    lock: Callable[[], AbstractContextManager[None]],
    metric: str,
) -> int:
    """Queue the trials marked to run again that failed at least ``settle`` seconds ago with no retry.

    The process that failed one was killed before it queued its retry (a worker in its
    stale-trial sweep, the process watching a dead worker process). One query finds them
    (on an RDB storage; on others, whose trials one process runs, none is looked for); the
    retries are queued under ``lock`` (the study's ask lock), after looking again, so that
    workers sweeping at once queue one retry each. ``settle``: as for
    :func:`queue_lost_retries`, the time a live process has had to queue its own.

    A record the killed process left open is closed first, as the stale-trial callback
    does: failed with the trial's reason, with the curve of ``metric`` that Optuna holds
    (:func:`~autotweak.engine._lost_trials.fail_lost_record`). One already closed is left as
    it is, and a trial with no record gets none here (a study's opening or close opens it).
    """
    backend = rdb_backend(study._storage)
    if backend is None:
        return 0
    if not _marked_unqueued(backend, study._study_id, settle) - _refused(study, max_retries):
        return 0
    with lock():
        trials = study.get_trials(deepcopy=False)
        marked = [t for t in finished_before(trials, settle) if t.user_attrs.get(ATTR.RUNS_AGAIN)]
        refused = _refused(study, max_retries)
        lost = [t for t in unqueued(trials, max_retries, among=marked) if _key(t) not in refused]
        _close_open_records(study, tracker, lost, metric)
        return _queue(study, tracker, lost, max_retries)


def _close_open_records(
    study: optuna.Study, tracker: BaseTracker, lost: list[FrozenTrial], metric: str
) -> None:
    """Close the records of the ``lost`` trials that are still open, failed with each trial's reason."""
    if not lost:
        return
    try:
        still_open = tracker.open_trials(study.study_name)
    except Exception as exc:  # their records wait for the study's next opening or close
        _log.warning(
            "could not list the open records of '%s' (%s: %.200s); the next opening or close closes them",
            study.study_name,
            type(exc).__name__,
            exc,
        )
        return
    for trial in lost:
        if trial._trial_id in still_open:
            reason = str(trial.user_attrs.get(ATTR.FAILURE) or LOST_WORKER)
            fail_lost_record(study, tracker, trial, reason, metric)


def worker_sweeper(
    study: optuna.Study, tracker: BaseTracker, storage_url: str, experiment: Experiment
) -> StaleSweeper:
    """The periodic sweep of a process that runs trials: stale trials failed, then marked retries queued.

    Once per heartbeat interval (see :class:`~autotweak.engine._stale.StaleSweeper` and
    :func:`queue_marked_retries`, under the study's ask lock on ``storage_url``).
    """
    execution = experiment.execution

    def queue_marked() -> int:
        return queue_marked_retries(
            study,
            tracker,
            settle=execution.grace_period,
            max_retries=execution.max_retries,
            lock=lambda: ask_lock(storage_url, study.study_name),
            metric=experiment.metric.name,
        )

    return StaleSweeper(study, execution.heartbeat_interval, then=queue_marked)


_MARKED_UNQUEUED_SQL = (
    sqlalchemy.text("""
SELECT t.trial_id, t.datetime_complete FROM trials t
JOIN trial_user_attributes m ON m.trial_id = t.trial_id AND m.key = :mark AND m.value_json = :yes
WHERE t.study_id = :study_id AND t.state = 'FAIL' AND t.datetime_complete <= :cutoff
  AND CAST(t.number AS VARCHAR) NOT IN (
    SELECT a.value_json FROM trials r JOIN trial_user_attributes a ON a.trial_id = r.trial_id
    WHERE r.study_id = :study_id AND a.key = :retry_of
  )
""")
    .bindparams(sqlalchemy.bindparam("cutoff", type_=sqlalchemy.DateTime))
    .columns(
        sqlalchemy.column("trial_id", sqlalchemy.Integer),
        sqlalchemy.column("datetime_complete", sqlalchemy.DateTime),
    )
)


def _marked_unqueued(storage: RDBStorage, study_id: int, settle: float) -> set[_Key]:
    """The failed trials of the study marked to run again ``settle`` seconds ago that have no retry.

    Each as (trial id, when it finished), as :data:`_REFUSED` keeps them.
    """
    cutoff = datetime.datetime.now() - datetime.timedelta(seconds=settle)  # Optuna's clock, as it stores it
    params = {
        "mark": ATTR.RUNS_AGAIN,
        "yes": json.dumps(True),
        "retry_of": ATTR.RETRY_OF,
        "study_id": study_id,
        "cutoff": cutoff,
    }
    with storage.engine.connect() as conn:
        return {(int(row[0]), row[1]) for row in conn.execute(_MARKED_UNQUEUED_SQL, params)}


def _queue(study: optuna.Study, tracker: BaseTracker, lost: list[FrozenTrial], max_retries: int) -> int:
    """Queue the ``lost`` trials again, each from the checkpoint its killed worker kept; how many.

    One this process found owed no retry before is passed over: it was said then.
    """
    refused = _refused(study, max_retries)
    queued = []
    for t in lost:
        if _key(t) in refused:
            continue
        checkpoint = _kept_checkpoint(study, tracker, t)
        if requeue(
            study, t.number, dict(t.params), t.user_attrs, max_retries=max_retries, checkpoint_run=checkpoint
        ):
            queued.append(t.number)
        else:
            _remember_refused(study, t, max_retries)
    if queued:
        _log.warning(
            "queued %d interrupted, preempted or crashed trial(s) to run again, which were stopped "
            "before their retry was queued: %s",
            len(queued),
            ", ".join(f"trial {n}" for n in queued),
        )
    return len(queued)


def _refused(study: optuna.Study, max_retries: int) -> set[_Key]:
    """The trials of ``study``'s storage this process found owed no retry with ``max_retries`` or more."""
    backend = rdb_backend(study._storage)
    if backend is None:  # one process runs its trials: its opening and close say it, as before
        return set()
    by_trial = _REFUSED.get(backend.engine.url.render_as_string(hide_password=False), {})
    return {key for key, refused_at in by_trial.items() if refused_at >= max_retries}


def _key(trial: FrozenTrial) -> _Key:
    """``trial`` as :data:`_REFUSED` keeps it."""
    return trial._trial_id, trial.datetime_complete


def _remember_refused(study: optuna.Study, trial: FrozenTrial, max_retries: int) -> None:
    """Note that ``trial`` is owed no retry with ``max_retries`` (see :data:`_REFUSED`)."""
    backend = rdb_backend(study._storage)
    if backend is not None:
        by_trial = _REFUSED.setdefault(backend.engine.url.render_as_string(hide_password=False), {})
        key = _key(trial)
        by_trial[key] = max(max_retries, by_trial.get(key, max_retries))


def unqueued(
    trials: list[FrozenTrial], max_retries: int, *, among: list[FrozenTrial] | None = None
) -> list[FrozenTrial]:
    """The interrupted and preempted trials (of ``among``, else all) that are owed a retry and have none.

    An interrupted trial is always owed one; a preempted one up to ``max_retries`` attempts
    (one past them was said so by its worker, and :func:`requeue` would say it again); a
    dead or lost worker's trial if it was marked to run again as it failed (see
    :func:`~autotweak.engine._lost_trials.settle_crashed` and
    :func:`~autotweak.engine._stale.fail_stale`; a trial its worker finished after the
    stale-trial sweep marked it did not fail).
    """
    retried = {t.user_attrs.get(ATTR.RETRY_OF) for t in trials}
    return [
        t
        for t in (trials if among is None else among)
        if t.number not in retried
        and t.state.is_finished()
        and (
            (state := state_of(t)) == "interrupted"
            or (t.state == TrialState.FAIL and t.user_attrs.get(ATTR.RUNS_AGAIN))
            or (state == "preempted" and attempt_left(t.user_attrs, max_retries))
        )
    ]


def _kept_checkpoint(study: optuna.Study, tracker: BaseTracker, trial: FrozenTrial) -> str | None:
    """The trial's own record, if its worker kept a whole checkpoint there before it was killed."""
    try:
        run_id = tracker.find_trial(study.study_name, trial._trial_id)
        return run_id if run_id is not None and tracker.checkpoint_kept(run_id) else None
    except Exception as exc:  # the retry resumes from an earlier attempt's checkpoint, or its start
        _log.warning(
            "could not look for the checkpoint of trial %d in its record (%s: %.200s); its retry "
            "resumes from an earlier attempt's checkpoint, if any",
            trial.number,
            type(exc).__name__,
            exc,
        )
        return None
