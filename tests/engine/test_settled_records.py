"""The record of a trial settled by another process holds what its worker's close would have written.

Its worker gone (frozen past the grace period, its process dead, its machine away), the
stale-trial sweep or the dead worker's settler closes its record; a catch-up writes one
MLflow lacks. Each writes, from Optuna's trial, the state, failure, curve,
``final_<metric>`` (the last report), ``compute`` and ``duration_s``, and a spot trial's
``cost_usd`` where the study holds it.
"""

from __future__ import annotations

import dataclasses
import socket
import time
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from autotweak._quiet import quiet_optuna
from autotweak._trial_costs import TRIAL_COSTS_ATTR
from autotweak.engine._killed import CRASHED
from autotweak.engine._lost_trials import settle_crashed
from autotweak.engine._provenance import provenance
from autotweak.engine._reconcile import lost_trial_start, reconcile
from autotweak.engine._stale import LOST_WORKER, fail_stale
from autotweak.engine._storage import make_storage
from autotweak.engine._study import ATTR, create_study
from autotweak.engine._study_sessions import open_session
from autotweak.engine._worker import make_stale_handler
from autotweak.tracking import RECONCILED_TAG, MlflowTracker
from tests.helpers import mlflow_runs

FINALS = {"loss", "final_loss", "compute", "duration_s"}  # what a worker's close of a trial writes


def _running(home: Path, make_experiment, name: str) -> tuple[optuna.Study, FrozenTrial, str]:
    """A trial whose worker opened its record, reported 0.9 and 0.7 (of 5 steps), then went silent."""
    exp = make_experiment(name=name)
    uri = f"sqlite:///{home / 'mlflow.db'}"
    storage = make_storage(
        f"sqlite:///{home / 'optuna.db'}",
        heartbeat_interval=1,
        grace_period=2,
        on_stale=make_stale_handler(MlflowTracker(uri), exp),
    )
    study = create_study(exp, storage)
    with quiet_optuna():  # Optuna's note that heartbeats belong to Study.optimize: autotweak's own loop
        trial = study.ask()
    study._storage.record_heartbeat(trial._trial_id)
    start = lost_trial_start(study, study._storage.get_trial(trial._trial_id))
    run_id = MlflowTracker(uri).start_trial(dataclasses.replace(start, seed=7, provenance=provenance()))
    trial.report(0.9, 1)
    trial.report(0.7, 2)
    return study, study._storage.get_trial(trial._trial_id), run_id


def _held(study: optuna.Study, number: int) -> float:
    """How long Optuna says the trial ran: from its start to its failure."""
    trial = study.trials[number]
    assert trial.datetime_start is not None and trial.datetime_complete is not None
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def test_a_record_the_stale_sweep_closes_holds_its_last_report_compute_and_duration(
    home: Path, make_experiment, mlflow_client: MlflowClient
) -> None:
    study, _, run_id = _running(home, make_experiment, "frozen")
    time.sleep(3.5)  # past the grace period (2 s; SQLite keeps heartbeats to the second): the worker is lost
    fail_stale(study)
    run = mlflow_client.get_run(run_id)
    assert run.info.status == "FAILED" and run.data.tags["autotweak.state"] == "failed"
    assert run.data.tags["autotweak.failure"] == LOST_WORKER
    assert set(run.data.metrics) == FINALS
    assert run.data.metrics["final_loss"] == 0.7  # its last report, as a preempted trial's close says
    assert run.data.metrics["compute"] == pytest.approx(2 / 5)  # 2 of its 5 steps
    assert run.data.metrics["duration_s"] == pytest.approx(_held(study, 0))
    assert RECONCILED_TAG not in run.data.tags  # its worker's own record, closed for it
    assert run.data.tags["autotweak.seed"] == "7" and "autotweak.host" in run.data.tags, "its worker's tags"
    reconcile(study, MlflowTracker(f"sqlite:///{home / 'mlflow.db'}"), "loss", 5)  # the study's end
    history = mlflow_client.get_metric_history(run_id, "final_loss")
    assert [m.value for m in history] == [0.7], "written once"


def test_a_dead_workers_record_holds_its_last_report_compute_and_duration(
    home: Path, make_experiment, mlflow_client: MlflowClient
) -> None:
    study, trial, run_id = _running(home, make_experiment, "crashed")
    tracker = MlflowTracker(f"sqlite:///{home / 'mlflow.db'}")
    reason = f"{CRASHED}autotweak-worker-1 exited with code 3"
    assert settle_crashed(study, tracker, trial._trial_id, reason, metric="loss", max_retries=0)
    run = mlflow_client.get_run(run_id)
    assert (run.info.status, run.data.tags["autotweak.failure"]) == ("FAILED", reason)
    assert set(run.data.metrics) == FINALS
    assert (run.data.metrics["final_loss"], run.data.metrics["compute"]) == (0.7, pytest.approx(2 / 5))
    assert run.data.metrics["duration_s"] == pytest.approx(_held(study, 0))


def _ended(study: optuna.Study, state: TrialState, value: float | None, **attrs: object) -> int:
    """Add a trial that ended an hour ago, reported 0.5 at steps 1 to 5, and has no record."""
    when = datetime.now() - timedelta(hours=1)
    study.add_trial(
        FrozenTrial(
            number=0,  # numbered by the storage
            state=state,
            value=value,
            datetime_start=when - timedelta(seconds=30),
            datetime_complete=when,
            params={"x": 1.0},
            distributions={"x": FloatDistribution(-5.0, 5.0)},
            user_attrs=dict(attrs),
            system_attrs={},
            intermediate_values=dict.fromkeys(range(1, 6), 0.5),
            trial_id=0,
        )
    )
    return study.trials[-1].number


def test_a_catch_up_writes_the_final_value_only_where_the_objective_did_not_fail(
    home: Path, make_experiment, mlflow_client: MlflowClient
) -> None:
    study = create_study(make_experiment(name="caught"), make_storage(f"sqlite:///{home / 'optuna.db'}"))
    raised = _ended(study, TrialState.FAIL, None, **{"autotweak.failure": "ValueError: boom"})
    lost = _ended(study, TrialState.FAIL, None, **{"autotweak.failure": LOST_WORKER})
    reconcile(study, MlflowTracker(f"sqlite:///{home / 'mlflow.db'}"), "loss", 5)
    runs = mlflow_runs(mlflow_client, "caught").children
    assert set(runs[raised].data.metrics) == FINALS - {"final_loss"}, "its objective raised: no final score"
    assert set(runs[lost].data.metrics) == FINALS
    for number in (raised, lost):
        assert runs[number].data.metrics["duration_s"] == 30.0
        assert runs[number].data.tags[RECONCILED_TAG] == "true"


def test_a_catch_up_writes_the_cost_a_spot_study_holds_once(
    home: Path, make_experiment, mlflow_client: MlflowClient
) -> None:
    """A spot session's close kept its trials' dollars on the study while MLflow lacked their records."""
    uri = f"sqlite:///{home / 'mlflow.db'}"
    study = create_study(make_experiment(name="spot"), make_storage(f"sqlite:///{home / 'optuna.db'}"))
    missing = _ended(study, TrialState.COMPLETE, 0.5)
    opened = _ended(study, TrialState.COMPLETE, 0.4)
    uncosted = _ended(study, TrialState.COMPLETE, 0.3)  # finished after the session's costs were kept
    open_run = MlflowTracker(uri).start_trial(lost_trial_start(study, study.trials[opened]))
    mlflow_client.log_metric(open_run, "cost_usd", 0.02)  # the session's close costed the open record
    study.set_user_attr(TRIAL_COSTS_ATTR, {str(missing): 0.01, str(opened): 0.02})
    reconcile(study, MlflowTracker(uri), "loss", 5)
    runs = mlflow_runs(mlflow_client, "spot").children
    assert runs[missing].data.metrics["cost_usd"] == 0.01
    assert [m.value for m in mlflow_client.get_metric_history(open_run, "cost_usd")] == [0.02], "written once"
    assert "cost_usd" not in runs[uncosted].data.metrics


@pytest.mark.parametrize("executor", ["processes", "aws-spot"])
def test_a_catch_up_record_carries_its_sessions_host_and_code_but_not_a_spot_instances(
    home: Path, make_experiment, mlflow_client: MlflowClient, executor: str
) -> None:
    """Optuna keeps no host nor commit per trial; the session that ran it does, once, as it opens.

    A spot session's trials run on its instances, not on its host: their records go without.
    """
    study = create_study(make_experiment(name="hosted"), make_storage(f"sqlite:///{home / 'optuna.db'}"))
    code = {"autotweak.git_commit": "0123abc", "autotweak.git_dirty": "false"}
    session = open_session(study, "run", {"name": executor, "workers": 2}, code=code)
    number = _ended(study, TrialState.COMPLETE, 0.5, **{ATTR.SESSION: session})
    reconcile(study, MlflowTracker(f"sqlite:///{home / 'mlflow.db'}"), "loss", 5)
    tags = mlflow_runs(mlflow_client, "hosted").children[number].data.tags
    if executor == "processes":
        assert (tags["autotweak.host"], tags["autotweak.git_commit"]) == (socket.gethostname(), "0123abc")
    else:
        assert "autotweak.host" not in tags and "autotweak.git_commit" not in tags
    assert tags["autotweak.seed"] == "None", "its worker process's seed is not kept"
