"""Before a study runs: its experiment read, its executor checked, its study and record opened."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage

from autotweak._locations import (
    check_storage_exists,
    default_home,
    resolve_storage_url,
    resolve_tracking_uri,
    storage_url_of,
)
from autotweak._validation import Where
from autotweak.engine._executors import BaseExecutor, executor_for
from autotweak.engine._main_script import check_not_starting_worker
from autotweak.engine._opening import drop_new_study, open_records, study_storage
from autotweak.engine._provenance import code_tags
from autotweak.engine._storage import close_storage, make_storage
from autotweak.engine._study import load_study
from autotweak.engine._study_sessions import ASK_TELL, open_session, record_session
from autotweak.engine._unreachable import retrying
from autotweak.engine._worker import WorkerContext, make_tracker
from autotweak.spec import Experiment, load_experiment
from autotweak.tracking import BaseTracker, check_tracking_server

__all__ = ["Prepared", "as_experiment", "check_study_exists", "prepare"]


@dataclass
class Prepared:
    """A study ready to run: its storage, record and worker context."""

    experiment: Experiment
    study: optuna.Study
    storage: BaseStorage
    tracker: BaseTracker
    context: WorkerContext
    unrecorded: str | None = None  # why the tracker could not be reached as the study closed
    caught_up: int = 0  # trial records written from Optuna's trials as the study opened and closed


def prepare(
    experiment: Experiment,
    *,
    resume: bool,
    track: bool = True,
    keep_setup: bool = False,
    runs_trials: bool = False,
    executor: Mapping[str, Any] | None = None,
) -> Prepared:
    """Create (or reopen) the study and its MLflow record; nothing runs yet.

    With ``runs_trials``, this process runs trials with the prepared tracker (the ask/tell
    API): it is made as a worker's is.

    With ``keep_setup`` (resume only), ``experiment`` runs this process's trials but the
    study's stored setup stays as it is: not compared, not replaced, so workers that join
    meanwhile still run the study's own spec.

    ``executor``, the ``meta`` of the executor that will run the trials, is recorded on
    the study, with this session (its host and start; see
    :mod:`~autotweak.engine._study_sessions`); a resume says when it differs from the last
    session's. An ask/tell study (``runs_trials``) is a session of its own kind.
    """
    check_not_starting_worker()
    if resume:
        check_study_exists(experiment)
    url = resolve_storage_url(experiment.storage)
    tracking_uri = resolve_tracking_uri(experiment.tracking_uri) if track else None
    if tracking_uri is not None:
        check_tracking_server(tracking_uri)  # before the study exists: a study without its record is stuck
    tracker = make_tracker(tracking_uri, local_workers=1 if runs_trials else None)
    made: tuple[BaseStorage, str | None] | None = None  # a study this call created, and its parent run
    storage: BaseStorage | None = None
    try:
        storage = study_storage(experiment, url, tracker)
        study, run_id, caught_up = open_records(
            experiment,
            storage,
            url,
            tracking_uri,
            tracker,
            resume=resume,
            keep_setup=keep_setup,
            executor=executor,
        )
        made = None if resume else (storage, run_id)
        session = _open_session(
            study, url, resume=resume, runs_trials=runs_trials, executor=executor, code=code_tags(experiment)
        )
        if session is not None:  # its line on the parent run, for the MLflow UI
            record_session(tracker, run_id, study, session)
    except BaseException:
        if made is not None:  # cut short as its session was recorded: a rerun must not find it
            drop_new_study(experiment.name, made[0], tracker, made[1])
        tracker.close()
        if storage is not None:  # not left to the collector: a notebook keeps the last traceback
            close_storage(storage)
        raise
    deadline = None if experiment.budget.wall_time is None else time.time() + experiment.budget.wall_time
    context = WorkerContext(
        experiment=experiment,
        storage_url=url,
        tracking_uri=tracking_uri,
        study_run_id=run_id,
        home=str(default_home()),
        deadline=deadline,
        session=session,
    )
    return Prepared(experiment, study, storage, tracker, context, caught_up=caught_up)


def _open_session(
    study: optuna.Study,
    url: str,
    *,
    resume: bool,
    runs_trials: bool,
    executor: Mapping[str, Any] | None,
    code: Mapping[str, str],
) -> str | None:
    """Record the session that runs trials now: the ask/tell API's, or an executor's; ``None``: neither.

    ``code``: the tags of the code it runs (its git commit), for the records a catch-up writes.
    """
    if runs_trials:
        return open_session(study, "ask/tell", ASK_TELL, store=url, code=code)
    if executor is None:  # report --ablate: its trials are not the search's
        return None
    return open_session(study, "resume" if resume else "run", executor, store=url, code=code)


def check_study_exists(experiment: Experiment) -> None:
    """Refuse to resume a study that is not in its storage, before anything is created for it.

    A store that does not exist is not created to say it holds no study; nor is the
    embedded tracking store's folder (``./.autotweak``), which the executor's checks and
    the study's record make.

    Raises:
        StudyNotFoundError: If the storage holds no such study (or does not exist); it names
            the storage and the studies there.
    """
    url = storage_url_of(experiment.storage)
    check_storage_exists(url, study=experiment.name)
    storage = make_storage(url)
    try:
        retrying(lambda: load_study(experiment.name, storage), "loading the study", store=url)
    finally:
        close_storage(storage)


def as_experiment(
    experiment: Experiment | Mapping[str, Any] | str | os.PathLike[str], *, check_objective: bool = True
) -> Experiment:
    """An experiment given as itself, as its mapping form, or as the path of its YAML file.

    Raises:
        SpecError: If ``experiment`` is none of these.
    """
    if isinstance(experiment, Experiment):
        return experiment
    if isinstance(experiment, Mapping):
        return Experiment.from_dict(experiment, check_objective=check_objective)
    if not isinstance(experiment, str | os.PathLike):
        raise Where(field="experiment").fail(
            "must be an Experiment, a mapping or the path of a YAML file", experiment
        )
    return load_experiment(Path(experiment), check_objective=check_objective)


def _runner(
    experiment: Experiment, executor: BaseExecutor | None, *, track: bool = True
) -> tuple[BaseExecutor, Callable[..., Any] | None]:
    """The executor, checked, and the objective it is handed (``None``: workers import the entry point).

    Raises:
        SpecError: If the objective cannot be imported, or cannot reach the executor's workers.
        AutotweakError: If the executor refuses the experiment's settings or stores.
    """
    objective = experiment.resolve_objective()
    runner = executor or executor_for(experiment.execution.workers)
    passed = None if experiment.objective_ref else objective
    runner.check_objective(passed)
    tracking_uri = resolve_tracking_uri(experiment.tracking_uri) if track else None
    runner.check_setup(experiment, resolve_storage_url(experiment.storage), tracking_uri)
    return runner, passed
