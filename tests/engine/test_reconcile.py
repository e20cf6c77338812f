"""Bringing the records in line with Optuna's trials, when a study opens and closes."""

from __future__ import annotations

import logging

import pytest
from optuna.distributions import FloatDistribution

import autotweak
from autotweak.engine._reconcile import lost_trial_start, reconcile
from autotweak.tracking import MlflowTracker
from tests.helpers import mlflow_runs

pytestmark = pytest.mark.filterwarnings(
    "ignore:Heartbeat of storage is supposed to be used with Study.optimize"
)


def test_a_record_that_cannot_be_written_is_warned_of_and_the_study_closes(
    home, make_experiment, mlflow_client, caplog
):
    """Trial 0's name is one MLflow refuses as a param: its record fails at every write."""
    exp = make_experiment(name="partly", budget={"trials": 2})
    study = autotweak.Study(exp)
    for name, value in (("bad@name", 0.9), ("x", 0.2)):  # told to Optuna only: the study's end records them
        trial = study.optuna_study.ask({name: FloatDistribution(-5.0, 5.0)})
        trial.report(value, 1)
        study.optuna_study.tell(trial, value)
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        summary = study.close()  # raised MlflowException, after all the compute was spent
    assert summary.counts["complete"] == 2
    runs = mlflow_runs(mlflow_client, "partly")
    assert runs.parents[0].info.status == "FINISHED", "the study's own record is closed"
    assert runs.children[1].info.status == "FINISHED" and runs.children[1].data.params["x"]
    warned = [r.getMessage() for r in caplog.records if r.name.startswith("autotweak.")]
    assert any("trial 0" in m and "bad@name" in m for m in warned), warned


def test_a_record_left_open_is_closed_only_once_its_worker_had_time_to_close_it(
    home, make_experiment, mlflow_client, caplog
):
    exp = make_experiment(name="left-open")
    study = autotweak.Study(exp)
    optuna_study = study.optuna_study
    trial = optuna_study.ask({"x": FloatDistribution(-5.0, 5.0)})
    tracker = MlflowTracker(f"sqlite:///{home / 'mlflow.db'}")
    tracker.start_trial(lost_trial_start(optuna_study, optuna_study.trials[trial.number]))  # its worker's
    optuna_study.tell(trial, 0.5)  # told; then its worker closes the record, or was killed first
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        assert reconcile(optuna_study, tracker, "loss", 5, settle=60) == 0, "a live worker's to close"
        assert tracker.open_trials("left-open")
        assert not caplog.records
        assert reconcile(optuna_study, tracker, "loss", 5) == 1, "its worker is gone: closed from Optuna's"
    assert [r.getMessage() for r in caplog.records] == [
        "closed 1 trial record(s) left open by a crashed worker"
    ]
    assert mlflow_runs(mlflow_client, "left-open").children[trial.number].info.status == "FINISHED"
    tracker.close()
    study.close()
