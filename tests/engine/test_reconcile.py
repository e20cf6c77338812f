"""Closing the records Optuna's trials lack: one record that cannot be written spoils none of the others."""

from __future__ import annotations

import logging

import pytest
from optuna.distributions import FloatDistribution

import autotweak
from tests.helpers import mlflow_runs


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
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
