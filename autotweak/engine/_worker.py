"""The one worker loop: ask, run the objective, tell, record — until the budget is spent.

Every executor runs this loop (in this process, in local worker processes, or on remote
machines); the shared Optuna storage coordinates them. Here a worker is set up (its
storage, sampler seed, study and tracker); the loop itself is in ``_loop``.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from autotweak.engine._budget import ask_lock
from autotweak.engine._loop import WorkerResult, _Interrupts, _Loop, interrupted_outcome
from autotweak.engine._lost_records import DroppedCount
from autotweak.engine._lost_trials import fail_lost_record
from autotweak.engine._outage import OutageNotice
from autotweak.engine._preemption import NoticeWatcher, imds_endpoint, imds_interval
from autotweak.engine._retries import requeue
from autotweak.engine._session import WorkerContext
from autotweak.engine._stale import LOST_WORKER, RetryingStaleHandler
from autotweak.engine._storage import close_storage, make_storage
from autotweak.engine._study import ATTR
from autotweak.engine._trial import Trial
from autotweak.engine._unreachable import retrying
from autotweak.engine._writer import RecordWriter
from autotweak.spec import Experiment
from autotweak.spec._components import build_pruner, build_sampler
from autotweak.tracking import BaseTracker, MlflowTracker, NullTracker, OffloadingTracker
from autotweak.tracking._offload import offload_mode, spare_core

__all__ = ["WorkerContext", "WorkerResult", "interrupted_outcome", "run_worker", "session_seed"]

_log = logging.getLogger(__name__)

# Study attr: how many worker processes of each index have drawn a sampler seed, by index
# ("*": the count of every index not listed, for a study begun before this attr was kept).
SEED_SESSIONS = "autotweak.seed_sessions"


def make_tracker(tracking_uri: str | None, *, local_workers: int | None = None) -> BaseTracker:
    """The MLflow tracker for a URI, or a tracker that records nothing.

    Args:
        tracking_uri: Where to record; ``None`` records nothing.
        local_workers: Set for the tracker of a process that runs trials, one of that many on
            this machine: its trial records may then be written by a helper process on an
            idle core (:class:`~autotweak.tracking.OffloadingTracker`).
    """
    mode = offload_mode()  # a bad setting is an error before anything runs
    if not tracking_uri:
        return NullTracker()
    local = MlflowTracker(tracking_uri)
    if local_workers is None or mode == "off":
        return local
    factory = functools.partial(MlflowTracker, tracking_uri)
    return OffloadingTracker(local, factory, mode=mode, idle_core=spare_core(local_workers))


def make_stale_handler(tracker: BaseTracker, experiment: Experiment) -> RetryingStaleHandler:
    """Close a dead trial's record, curve and all, and queue it again (while max_retries last).

    Its record says why, as the sweep did on the trial: its worker was lost, or its spot
    machine went away (preempted; see :func:`~autotweak.engine._stale.fail_stale`). The
    sweep marks a trial it queues again before it fails it (see
    :class:`~autotweak.engine._stale.RetryingStaleHandler`).
    """
    metric, max_retries = experiment.metric.name, experiment.execution.max_retries

    def on_stale(study: optuna.Study, trial: FrozenTrial) -> None:
        reason = str(trial.user_attrs.get(ATTR.FAILURE) or LOST_WORKER)
        fail_lost_record(study, tracker, trial, reason, metric)
        _log.info("trial %d went stale (%s)", trial.number, reason)
        requeue(study, trial.number, dict(trial.params), trial.user_attrs, max_retries=max_retries)

    return RetryingStaleHandler(on_stale, max_retries)


def run_worker(
    ctx: WorkerContext,
    objective: Callable[..., Any] | None = None,
    *,
    schema_checked: bool = False,
    on_trial: Callable[[int], None] | None = None,
) -> WorkerResult:
    """Run trials of the study until its budget is spent or a stop is requested.

    Args:
        ctx: The study and the stores.
        objective: The objective; the experiment's entry point when ``None``.
        schema_checked: The storage's tables were created and checked by the process that
            started this one; they are not checked again.
        on_trial: Called with each trial's Optuna id as soon as it is asked for, so that
            whoever watches this worker knows which trial it leaves running if it dies.
    """
    objective = objective or ctx.experiment.resolve_objective()
    tracker = make_tracker(ctx.tracking_uri, local_workers=ctx.local_workers)
    try:
        return _run_with(ctx, objective, tracker, schema_checked=schema_checked, on_trial=on_trial)
    finally:
        tracker.close()  # after the record writer has drained: every write is done


def _run_with(
    ctx: WorkerContext,
    objective: Callable[..., Any],
    tracker: BaseTracker,
    *,
    schema_checked: bool,
    on_trial: Callable[[int], None] | None = None,
) -> WorkerResult:
    experiment = ctx.experiment
    execution = experiment.execution
    url = ctx.storage_url
    # Every step of a start touches the storage, which may be restarting just then: each is retried.
    storage = retrying(
        lambda: make_storage(
            url,
            heartbeat_interval=execution.heartbeat_interval,
            grace_period=execution.grace_period,
            on_stale=make_stale_handler(tracker, experiment),
            check_schema=not schema_checked,
        ),
        "opening the storage",
        store=url,
    )
    try:
        return _run_on(ctx, objective, tracker, storage, on_trial)
    finally:  # a worker run in a script's own process holds no connection once it is done
        close_storage(storage)


def _run_on(
    ctx: WorkerContext,
    objective: Callable[..., Any],
    tracker: BaseTracker,
    storage: BaseStorage,
    on_trial: Callable[[int], None] | None,
) -> WorkerResult:
    experiment, url = ctx.experiment, ctx.storage_url
    seed = retrying(
        lambda: session_seed(storage, url, experiment.name, experiment.seed, ctx.worker_index),
        "claiming a sampler seed",
        store=url,
    )
    sampler = build_sampler(experiment.sampler, experiment.space, seed)
    pruner = build_pruner(experiment.pruner, experiment.metric)
    study = retrying(
        lambda: optuna.load_study(
            study_name=experiment.name, storage=storage, sampler=sampler, pruner=pruner
        ),
        "loading the study",
        store=url,
    )
    watcher = NoticeWatcher(imds_endpoint(), imds_interval()).start()
    interrupts = _Interrupts()
    count = DroppedCount(study, ctx.session if ctx.tracking_uri else None)  # for a close without results
    count.started()
    try:
        records = RecordWriter(
            threaded=lambda: tracker.threaded_writes,
            unreachable=tracker.unreachable,
            on_change=outage_notice(study, ctx),
        )
        with interrupts.installed(), records as writer:  # Ctrl-C waits for the writes
            loop = _Loop(ctx, study, storage, tracker, _call_style(objective), seed, watcher, writer)
            loop.on_trial = on_trial
            result = loop.run(interrupts)
        result.records_dropped = records.dropped + loop.requeued_dropped  # counted once the writer closed
        result.tracker_down = records.lost or loop.tracker_down
        count.ended(result.records_dropped)
        return result
    finally:
        watcher.stop()


def outage_notice(study: optuna.Study, ctx: WorkerContext) -> Callable[[str | None], None] | None:
    """What says that the tracking server of ``ctx`` stopped or started answering (see :mod:`._outage`)."""
    if not ctx.tracking_uri:
        return None
    return OutageNotice(study, ctx.storage_url, ctx.session, ctx.tracking_uri)


def session_seed(
    storage: BaseStorage, storage_url: str, study_name: str, seed: int | None, worker_index: int
) -> int | None:
    """The sampler seed of a worker starting now: a stream no earlier worker of the study drew.

    In the study's first session worker ``i`` uses ``seed + i``, so that a fresh study is
    reproducible; a worker of a later session (a resume, ``autotweak worker`` joining) gets a
    seed derived from ``(seed, i, session)``: with ``seed + i`` again it would propose the
    configs of the first session once more. Sessions are counted per worker index in the
    study, under the ask lock, so that workers starting together each claim their own.

    Example:
        >>> from autotweak.engine._storage import make_storage
        >>> storage = make_storage("memory")
        >>> _ = optuna.create_study(study_name="s", storage=storage)
        >>> [session_seed(storage, "memory", "s", 10, i) for i in (0, 1)]
        [10, 11]
        >>> session_seed(storage, "memory", "s", 10, 0) != 10
        True
    """
    if seed is None:
        return None
    study_id = storage.get_study_id_from_name(study_name)  # connects outside the lock
    with ask_lock(storage_url, study_name):
        sessions: dict[str, int] = dict(storage.get_study_user_attrs(study_id).get(SEED_SESSIONS) or {})
        if not sessions and _has_started_trials(storage, study_id):
            sessions["*"] = 1  # begun before sessions were counted: its first session is spent
        session = int(sessions.get(str(worker_index), sessions.get("*", 0)))
        storage.set_study_user_attr(study_id, SEED_SESSIONS, {**sessions, str(worker_index): session + 1})
    if session == 0:
        return seed + worker_index
    return int(np.random.SeedSequence([seed, worker_index, session]).generate_state(1)[0])


def _has_started_trials(storage: BaseStorage, study_id: int) -> bool:
    """Whether a sampler proposed any trial of the study (enqueued trials wait unproposed)."""
    started = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return bool(storage.get_all_trials(study_id, deepcopy=False, states=started))


def _call_style(objective: Callable[..., Any]) -> Callable[[dict[str, Any], Trial], Any]:
    """Call ``f(config, trial)`` when ``f`` can take two positional arguments, else ``f(config)``.

    A second parameter with a default (``def train(config, trial=None)``) still gets the
    trial: only an objective that cannot take it is called with the config alone.
    """
    try:
        params = inspect.signature(objective).parameters.values()
    except (TypeError, ValueError):
        return objective
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params):
        return objective
    return lambda config, trial: objective(config)
