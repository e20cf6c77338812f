"""Opening a study: its record in Optuna's storage and its parent run in the tracker, together.

A fresh study whose parent run cannot be made is deleted again: kept, it would block a new
``optimize`` under its name ("already exists") while holding nothing but its queued base
trial, and a resume would have to make the record that just failed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.storages import BaseStorage

from autotweak._locations import redact
from autotweak.engine._lost_retries import queue_lost_retries
from autotweak.engine._reconcile import reconcile
from autotweak.engine._stale import fail_stale
from autotweak.engine._storage import make_storage
from autotweak.engine._study import (
    ATTR,
    check_resumable,
    create_study,
    executors_of,
    load_study,
    note_executor,
    study_exists,
)
from autotweak.engine._unreachable import retrying
from autotweak.engine._worker import make_stale_handler
from autotweak.exceptions import AutotweakError, StudyExistsError, TrackingError
from autotweak.spec import Experiment
from autotweak.tracking import BaseTracker, StudyInfo

__all__ = ["catch_up", "drop_new_study", "open_records", "study_storage"]

_log = logging.getLogger(__name__)


def study_storage(experiment: Experiment, storage_url: str, tracker: BaseTracker) -> BaseStorage:
    """The storage a study runs on: heartbeats as ``experiment`` says, stale trials told to ``tracker``."""
    return make_storage(
        storage_url,
        heartbeat_interval=experiment.execution.heartbeat_interval,
        grace_period=experiment.execution.grace_period,
        on_stale=make_stale_handler(tracker, experiment),
    )


def open_records(
    experiment: Experiment,
    storage: BaseStorage,
    storage_url: str,
    tracking_uri: str | None,
    tracker: BaseTracker,
    *,
    resume: bool,
    keep_setup: bool,
    executor: Mapping[str, Any] | None = None,
) -> tuple[optuna.Study, str | None, int]:
    """The study in Optuna's ``storage`` (see :func:`study_storage`) and its parent run in the tracker.

    Made or reopened; also how many trial records were written from Optuna's trials on the
    way (see :func:`~autotweak.engine._reconcile.reconcile`): those a tracker that was down
    missed.

    ``executor`` is the ``meta`` of the executor that runs this session's trials, recorded
    on the study (``None``: not recorded, as for the ask/tell API's own loop).
    """
    if resume:
        study = retrying(lambda: load_study(experiment.name, storage), "loading the study", store=storage_url)
        if not keep_setup:
            check_resumable(study, experiment)
            study.set_user_attr(ATTR.SPEC, experiment.to_dict())  # a new budget reaches joining workers
            if executor is not None:
                note_executor(study, executor)
        retrying(lambda: fail_stale(study), "looking for stale trials", store=storage_url)
        run_id = _open_study_record(study, experiment, storage_url, tracking_uri, tracker)
        caught_up = _record_caught_up(study, experiment, run_id, (storage_url, tracking_uri), tracker)
        return study, run_id, caught_up
    run_id = None
    try:
        name = None if executor is None else executor.get("name")
        study = create_study(experiment, storage, name)  # a Ctrl-C may cut it after the study's row is made
        if executor is not None:
            note_executor(study, executor)
        run_id = _open_study_record(study, experiment, storage_url, tracking_uri, tracker)
        caught_up = _record_caught_up(study, experiment, run_id, (storage_url, tracking_uri), tracker)
    except StudyExistsError:  # another's (made before, or since its check): never dropped
        raise
    except BaseException:
        drop_new_study(experiment.name, storage, tracker, run_id)
        raise
    return study, run_id, caught_up


def _open_study_record(
    study: optuna.Study,
    experiment: Experiment,
    storage_url: str,
    tracking_uri: str | None,
    tracker: BaseTracker,
) -> str | None:
    """The study's parent run, opened (or reopened): its id.

    Raises:
        TrackingError: If the tracker cannot open the study's record (one line: the URI and why).
    """
    attrs = study.user_attrs
    meta = {**attrs.get(ATTR.META, {}), "tracker": tracker.meta}
    if ATTR.EXECUTOR in attrs:  # the latest session's, and the ones it ran on before
        meta["executor"] = attrs[ATTR.EXECUTOR]
        meta["executors"] = executors_of(attrs)
    try:
        run_id = tracker.start_study(
            StudyInfo(
                study_name=experiment.name,
                spec=experiment.to_dict(),
                meta=meta,
                storage=storage_url,
                source_file=experiment.source,
                tags=dict(experiment.tags),
            ),
            run_id=study.user_attrs.get(ATTR.RUN_ID),
        )
    except AutotweakError:
        raise
    except Exception as exc:
        where = "the tracker" if tracking_uri is None else f"tracking URI {redact(tracking_uri)}"
        raise TrackingError(
            f"{where}: could not open the record of study '{experiment.name}': {_first_line(exc)}"
        ) from exc
    return run_id


def _record_caught_up(
    study: optuna.Study,
    experiment: Experiment,
    run_id: str | None,
    stores: tuple[str, str | None],
    tracker: BaseTracker,
) -> int:
    """The tracker's records made to agree with Optuna's, and the parent run's id kept on the study.

    Returns:
        How many trial records were written from Optuna's trials.
    """
    settle = experiment.execution.grace_period  # workers of this study may be running elsewhere
    storage_url, tracking_uri = stores
    caught_up = catch_up(study, tracker, experiment, settle=settle, store=storage_url)
    if run_id is not None and ATTR.RUN_ID not in study.user_attrs:
        study.set_user_attr(ATTR.RUN_ID, run_id)
    if tracking_uri is not None:
        study.set_user_attr(ATTR.TRACKING_URI, redact(tracking_uri))
    return caught_up


def catch_up(
    study: optuna.Study, tracker: BaseTracker, experiment: Experiment, *, settle: float, store: str
) -> int:
    """The tracker's records brought in line with Optuna's trials, and lost trials queued again.

    Each is read through a storage outage (:func:`~autotweak.engine._unreachable.retrying`), as
    the study opens and as it closes. Lost retries are queued with the grace period (see
    :func:`~autotweak.engine._lost_retries.queue_lost_retries`).

    Returns:
        How many trial records were written from Optuna's trials (``settle``: see
        :func:`~autotweak.engine._reconcile.reconcile`).
    """
    metric, execution = experiment.metric, experiment.execution
    caught_up = retrying(
        lambda: reconcile(study, tracker, metric.name, metric.steps, settle=settle),
        "bringing the trial records in line with the study",
        store=store,
    )
    retrying(
        lambda: queue_lost_retries(
            study, tracker, settle=execution.grace_period, max_retries=execution.max_retries
        ),
        "queueing the lost trials again",
        store=store,
    )
    return caught_up


def drop_new_study(name: str, storage: BaseStorage, tracker: BaseTracker, run_id: str | None) -> None:
    """Delete the study this call has just created, and its parent run, when its record could not be made.

    Kept, it would block ``optimize`` with the same name ("already exists") while it holds
    nothing but the queued base trial. Also when Ctrl-C (or SIGTERM) cut its making short;
    its parent run (``run_id``, when made) would then stay RUNNING in MLflow for ever.
    """
    try:
        if run_id is not None:
            tracker.drop_study(run_id)
        if not study_exists(storage, name):  # cut short before it was made
            return
        optuna.delete_study(study_name=name, storage=storage)
    except Exception as exc:  # the first error is the one to report
        _log.warning("could not delete study '%s' after its record failed: %s", name, exc)
    else:
        _log.info("deleted study '%s': its record could not be made, and nothing had run", name)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__
