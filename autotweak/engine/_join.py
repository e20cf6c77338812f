"""``join``: run a running study's trials from another shell or machine (``autotweak worker``)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from optuna.storages import BaseStorage

from autotweak._locations import (
    check_storage_exists,
    default_home,
    is_redacted,
    resolve_tracking_uri,
    storage_url_of,
)
from autotweak.engine._budget import close_connections, hold_connections
from autotweak.engine._crashed import CrashSettler
from autotweak.engine._executors import ProcessExecutor, WorkerCrashError, executor_for
from autotweak.engine._machines import record_machine
from autotweak.engine._main_script import check_not_starting_worker
from autotweak.engine._provenance import code_tags
from autotweak.engine._storage import make_storage
from autotweak.engine._study import ATTR, load_study
from autotweak.engine._study_sessions import open_session, record_session
from autotweak.engine._unreachable import retrying
from autotweak.engine._worker import WorkerContext, WorkerResult
from autotweak.exceptions import AutotweakError
from autotweak.spec import Experiment
from autotweak.tracking import check_tracking_server

__all__ = ["join"]

_log = logging.getLogger(__name__)


def join(
    study_name: str,
    *,
    storage: str | None = None,
    tracking_uri: str | None = None,
    workers: int = 1,
    wall_time: float | None = None,
    session: str | None = None,
    on_ready: Callable[[], None] | None = None,
    supervise: bool = False,
) -> list[WorkerResult]:
    """Join a running study as a worker: run its trials until its budget is spent.

    The study's own spec (kept in the storage) says what to run; this machine only needs
    to reach the stores and import the objective.

    Args:
        study_name: The study to join.
        storage: Its Optuna storage URL (else ``$AUTOTWEAK_STORAGE``, else the embedded one).
        tracking_uri: Its MLflow tracking URI (else ``$MLFLOW_TRACKING_URI``, else the one
            the study recorded, unless that held a password).
        workers: Local worker processes to run.
        wall_time: Seconds after which this worker stops taking trials.
        session: The id of the session that launched this worker (a spot worker of
            ``optimize``), whose trials these are; else this worker is a session of its own,
            recorded on the study (see :mod:`~autotweak.engine._study_sessions`).
        on_ready: Called once the study and its stores are found, before any worker starts.
        supervise: Run the workers in child processes of this one also when there is a single
            worker (several always run so), which fails a trial at once, as the config's
            failure, when the kernel kills its worker process (see
            :mod:`~autotweak.engine._crashed`); spot workers run so.

    A tracking server that does not answer is said when a worker finds it so (see
    :mod:`~autotweak.engine._outage`), and again as the workers end if their records were
    dropped meanwhile: a joined worker has no study close to say it.

    Returns:
        What each worker did.

    Raises:
        WorkerCrashError: If every worker failed.
    """
    check_not_starting_worker()
    url = storage_url_of(storage)
    check_storage_exists(url, study=study_name)  # an empty default store is not created to say so
    # A worker that a study's executor launched (a spot instance: ``session``) waits out a storage
    # restarting as it starts, as the worker loop does; one started by hand is told at once that
    # the storage cannot be opened (a wrong URL, a server not started), as status is. Once it is
    # open, a dropped connection is read through either way.
    if session is None:
        opened = make_storage(url)
    else:
        opened = retrying(lambda: make_storage(url), "opening the storage", store=url)
    hold_connections(url)  # the ask lock's pool, shared with other studies open in this process
    try:
        return _join_with(
            opened,
            url,
            study_name,
            tracking_uri=tracking_uri,
            workers=workers,
            wall_time=wall_time,
            session=session,
            on_ready=on_ready,
            supervise=supervise,
        )
    finally:  # a script that joins studies in turn holds no connection for those done
        close_connections(opened, url)


def _join_with(
    opened: BaseStorage,
    url: str,
    study_name: str,
    *,
    tracking_uri: str | None,
    workers: int,
    wall_time: float | None,
    session: str | None,
    on_ready: Callable[[], None] | None,
    supervise: bool,
) -> list[WorkerResult]:
    """:func:`join` on the storage ``opened`` (at ``url``)."""
    study = retrying(lambda: load_study(study_name, opened), "loading the study", store=url)
    spec = study.user_attrs.get(ATTR.SPEC)
    if not spec:
        raise AutotweakError(f"study '{study_name}' was not created by autotweak; it holds no spec to run.")
    experiment = Experiment.from_dict(spec, source=f"<study {study_name}>")
    experiment.resolve_objective()  # before anything runs: a study driven by ask/tell has none
    recorded = study.user_attrs.get(ATTR.TRACKING_URI)
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri is None and recorded and not is_redacted(recorded):
        uri = recorded
    tracking = resolve_tracking_uri(uri)
    experiment = experiment.with_overrides(storage=url, tracking_uri=tracking)  # the spec's hide passwords
    check_tracking_server(tracking)  # before a trial starts: its worker would wait minutes on a dead server
    # One connection to the storage, and one tracker, for the whole process: the settler of its
    # worker processes' deaths takes this study's (on PostgreSQL each counts to max_connections).
    settler = CrashSettler(experiment, lambda: study, tracking)
    runner = ProcessExecutor(workers, settler=settler) if supervise or workers > 1 else executor_for(workers)
    own = session is None  # a spot worker's session is its launcher's, which writes its line
    code = code_tags(experiment)  # its git commit, for the records a catch-up writes of its trials
    session = session or open_session(
        study, "worker", runner.meta, store=url, code=code
    )  # the report counts its trials
    record_machine(study, session, store=url)  # on EC2: the report groups its trials by instance type
    context = WorkerContext(
        experiment=experiment,
        storage_url=url,
        tracking_uri=tracking,
        study_run_id=study.user_attrs.get(ATTR.RUN_ID),
        home=str(default_home()),
        deadline=None if wall_time is None else time.time() + wall_time,
        session=session,
    )
    try:
        if own:  # its line on the parent run, as it starts and (with its trials) as it ends
            record_session(settler.tracker(), context.study_run_id, study, session)
        if on_ready is not None:
            on_ready()
        results = runner.run(context, None)
        settler.settle(results)
        if own:
            record_session(settler.tracker(), context.study_run_id, study, session, ended=True)
    finally:
        settler.close()
    _say_dropped(study_name, results)
    if results and all(r.crashed for r in results):
        raise WorkerCrashError(study_name, [str(r.error) for r in results])
    return results


def _say_dropped(study_name: str, results: list[WorkerResult]) -> None:
    """Warn of the trial records the workers could not write, their tracking server not answering."""
    dropped = sum(r.records_dropped for r in results)
    if not dropped:
        return
    why = next((r.tracker_down for r in results if r.tracker_down), "it did not answer")
    _log.warning(
        "study '%s': %d trial record(s) of this worker are not in MLflow: %s. Every trial is in Optuna: "
        "the close of the study's run writes them if the server answers then, else `autotweak resume %s` "
        "does, once it answers",
        study_name,
        dropped,
        why,
        study_name,
    )
