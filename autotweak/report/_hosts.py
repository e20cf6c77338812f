"""The host each trial ran on, for the report's time per worker.

Optuna holds it: each trial names its session (user attr ``autotweak.session``) and each
session its host, once, on the study (:mod:`~autotweak.engine._study_sessions`). MLflow is
asked only for the trials that cannot be placed so (a study older than its sessions' record,
a spot session's trials, ``report --ablate``'s): opening its store takes seconds. A spot
session's trials need no host where its machines are of one instance type: the report groups
them by it (:func:`~autotweak.engine._machines.trial_types`).
"""

from __future__ import annotations

import logging

import optuna

from autotweak.engine._machines import trial_types
from autotweak.engine._study import ATTR
from autotweak.engine._study_sessions import session_hosts
from autotweak.exceptions import TrackingError

__all__ = ["trial_hosts", "trial_types"]

_log = logging.getLogger(__name__)


def trial_hosts(study: optuna.Study, tracking_uri: str | None) -> dict[int, str]:
    """The host each started trial ran on: its session's, else its MLflow child run's (where it has one)."""
    hosts, unplaced = _session_hosts(study)
    if unplaced:
        mlflow = _mlflow_hosts(study, tracking_uri)
        hosts |= {number: host for number, host in mlflow.items() if number in unplaced}
    return hosts


def _session_hosts(study: optuna.Study) -> tuple[dict[int, str], set[int]]:
    """Hosts by trial number from the trials' sessions, and the started trials they do not place.

    A trial whose session's machines are of one instance type needs no host: the report
    groups it by its type.
    """
    by_session = session_hosts(study.user_attrs)
    trials = study.get_trials(deepcopy=False)
    typed = trial_types(study.user_attrs, trials)
    hosts: dict[int, str] = {}
    unplaced: set[int] = set()
    for trial in trials:
        if trial.datetime_start is None or trial.number in typed:
            continue
        host = by_session.get(str(trial.user_attrs.get(ATTR.SESSION)))
        if host is None:
            unplaced.add(trial.number)
        else:
            hosts[trial.number] = host
    return hosts, unplaced


def _mlflow_hosts(study: optuna.Study, tracking_uri: str | None) -> dict[int, str]:
    """The host of each trial that has an MLflow child run with one; empty when unreachable."""
    if not tracking_uri:
        return {}
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from autotweak.tracking._server import check_tracking_server

    try:  # once, at once: MLflow's client retries a server that is down for minutes
        check_tracking_server(tracking_uri)
    except TrackingError as exc:
        _log.warning("%s; the report leaves out the host each trial ran on", exc)
        return {}
    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        experiment = client.get_experiment_by_name(study.study_name)
        if experiment is None:
            return {}
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string="tags.`autotweak.kind` = 'trial'",
            max_results=50_000,
        )
    except MlflowException:
        _log.info("no hosts from MLflow for study '%s'", study.study_name, exc_info=True)
        return {}
    hosts = {}
    for run in runs:
        tags = run.data.tags
        if "autotweak.host" in tags and "autotweak.trial_number" in tags:
            hosts[int(tags["autotweak.trial_number"])] = tags["autotweak.host"]
    return hosts
