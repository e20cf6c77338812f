"""Finding a study's trial records in MLflow, and keeping one of two openings of a trial's record.

Each record is the trial run tagged with its Optuna trial id (``autotweak.optuna_trial_id``).
Two openings of one trial's record can race: a worker's late opening and a catch-up's in
another process (:mod:`autotweak.engine._late`). Each looks once it has landed
(:func:`keep_one`), and both keep the same one of those they see, so the last to look
leaves one.
"""

from __future__ import annotations

import logging

from mlflow import MlflowClient
from mlflow.entities import Run

from autotweak.tracking._inflight import IN_FLIGHT
from autotweak.tracking._records import RECONCILED_TAG

__all__ = ["keep_one", "keeper", "open_trials", "recorded_trials", "trial_runs"]

_log = logging.getLogger(__name__)

_SEARCH_PAGE = 1000  # runs per search request (MLflow's server allows up to 50,000)


def trial_runs(client: MlflowClient, experiment_id: str, trial_id: int, limit: int) -> list[Run]:
    """Up to ``limit`` records (live runs) of the trial with Optuna id ``trial_id``."""
    return list(
        client.search_runs(
            [experiment_id],
            filter_string=f"tags.`autotweak.optuna_trial_id` = '{trial_id}'",
            max_results=limit,
        )
    )


def keeper(runs: list[Run]) -> str:
    """The one of a trial's records (``runs``, its openings found) to keep.

    Its worker's opening, which holds its host and code version, before a catch-up's (tag
    :data:`RECONCILED_TAG` from its making); then the oldest, by start and id. Whoever
    asks picks the same one of those it sees.
    """
    kept: str = min((RECONCILED_TAG in r.data.tags, r.info.start_time or 0, r.info.run_id) for r in runs)[2]
    return kept


def keep_one(client: MlflowClient, experiment_id: str, trial_id: int, run_id: str) -> tuple[str, list[str]]:
    """The trial's one record, ``run_id`` being one of its openings, and the others seen, deleted."""
    runs = trial_runs(client, experiment_id, trial_id, limit=10)
    if run_id not in {r.info.run_id for r in runs}:  # deleted by another's look: it is not kept
        return (keeper(runs) if runs else run_id), []
    kept = keeper(runs)
    deleted = [r.info.run_id for r in runs if r.info.run_id != kept]
    for gone in deleted:
        client.delete_run(gone)
        _log.info("trial run %s was a second record of the trial; deleted, %s is it", gone, kept)
    return kept, deleted


def open_trials(client: MlflowClient, study_name: str) -> dict[int, str]:
    """Records still open (``RUNNING``), by Optuna trial id."""
    found = client.get_experiment_by_name(study_name)
    if found is None:
        return {}
    runs = client.search_runs(
        [found.experiment_id],
        filter_string="attributes.status = 'RUNNING' and tags.`autotweak.kind` = 'trial'",
        max_results=10_000,
    )
    return {int(r.data.tags["autotweak.optuna_trial_id"]): r.info.run_id for r in runs}


def recorded_trials(client: MlflowClient, study_name: str) -> set[int]:
    """Optuna ids of the trials with a record; also those whose opening is under way in this process."""
    found = client.get_experiment_by_name(study_name)
    if found is None:
        return IN_FLIGHT.openings(study_name)
    ids = IN_FLIGHT.openings(study_name)  # before the runs are read: one that lands between is among them
    token: str | None = None
    while True:
        page = client.search_runs(
            [found.experiment_id],
            filter_string="tags.`autotweak.kind` = 'trial'",
            max_results=_SEARCH_PAGE,
            page_token=token,
        )
        ids |= {int(r.data.tags["autotweak.optuna_trial_id"]) for r in page}
        token = page.token
        if not token:
            return ids
