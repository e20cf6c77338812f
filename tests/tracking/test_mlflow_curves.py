"""A trial's MLflow curve holds every point Optuna keeps: non-finite ones, and a lost worker's."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import optuna
from mlflow import MlflowClient
from optuna.trial import TrialState

import autotweak
from autotweak.engine._reconcile import lost_trial_start, reconcile
from autotweak.engine._worker import make_stale_handler
from autotweak.tracking import MlflowTracker
from tests.helpers import mlflow_runs

BIG = sys.float_info.max  # what MLflow's SQL stores keep for an infinite value


def _curve(client: MlflowClient, run_id: str, metric: str = "loss") -> list[tuple[int, float | None]]:
    """The run's curve by step, ``nan`` shown as ``None`` so that curves compare with ``==``."""
    points = [
        (m.step, None if math.isnan(m.value) else m.value) for m in client.get_metric_history(run_id, metric)
    ]
    return sorted(points, key=lambda point: point[0])


def test_non_finite_reports_are_in_the_mlflow_curve(
    home: Path, make_experiment, mlflow_client: MlflowClient
) -> None:
    exp = make_experiment(name="diverged", budget={"trials": 2})
    with autotweak.Study(exp) as study:
        diverged = study.ask()
        assert diverged is not None
        for step, value in enumerate([0.5, math.nan, math.inf, -math.inf], start=1):
            diverged.report(value, step)
        study.tell(diverged, None)  # a failed trial: its curve is still what Optuna keeps
        fine = study.ask()
        assert fine is not None
        fine.report(0.3, 1)
        study.tell(fine, 0.3)
    runs = mlflow_runs(mlflow_client, "diverged").children
    got = _curve(mlflow_client, runs[0].info.run_id)
    assert got == [(1, 0.5), (2, None), (3, BIG), (4, -BIG)]
    assert _curve(mlflow_client, runs[1].info.run_id) == [(1, 0.3)]


def test_non_finite_points_are_written_by_both_kinds_of_write(
    home: Path, mlflow_client: MlflowClient
) -> None:
    uri = f"sqlite:///{home / 'mlflow.db'}"
    study = optuna.create_study(study_name="direct")
    trial = study.ask()
    tracker = MlflowTracker(uri)
    run_id = tracker.start_trial(lost_trial_start(study, study._storage.get_trial(trial._trial_id)))
    tracker.log_steps(run_id, "loss", [(1, math.nan, 0), (2, math.inf, 0)])  # streamed while it runs
    record = autotweak.tracking.TrialRecord(
        run_id=run_id,
        number=0,
        state="pruned",
        metric="loss",
        value=math.nan,
        steps=[(3, -math.inf, 0)],
        duration=1.0,
        compute=None,
    )
    tracker.end_trial(record)
    assert _curve(mlflow_client, run_id) == [(1, None), (2, BIG), (3, -BIG)]
    assert "final_loss" not in mlflow_client.get_run(run_id).data.metrics  # a final score is a number


def test_a_lost_workers_curve_is_restored_from_optuna_once(home: Path, mlflow_client: MlflowClient) -> None:
    uri = f"sqlite:///{home / 'mlflow.db'}"
    study = optuna.create_study(study_name="lost", storage=f"sqlite:///{home / 'optuna.db'}")
    trial = study.ask()
    worker = MlflowTracker(uri)  # the worker opens the record, then dies before writing the curve
    run_id = worker.start_trial(lost_trial_start(study, study._storage.get_trial(trial._trial_id)))
    for step, value in [(1, 0.9), (2, 0.7), (3, math.nan)]:
        trial.report(value, step)
    study.tell(trial, state=TrialState.FAIL)  # what Optuna's stale sweep does
    sweeper = MlflowTracker(uri)  # another process notices, and closes the record
    make_stale_handler(sweeper, max_retries=0)(study, study._storage.get_trial(trial._trial_id))
    assert mlflow_client.get_run(run_id).info.status == "FAILED"
    assert _curve(mlflow_client, run_id) == []

    for _ in range(2):  # the study's end, then a resume: written once
        reconcile(study, MlflowTracker(uri), "loss", 3)
        assert _curve(mlflow_client, run_id) == [(1, 0.9), (2, 0.7), (3, None)]
    run = mlflow_client.get_run(run_id)
    assert run.info.status == "FAILED" and "worker lost" in run.data.tags["autotweak.failure"]


def test_a_curve_is_restored_only_for_the_points_the_record_lacks(
    home: Path, mlflow_client: MlflowClient
) -> None:
    uri = f"sqlite:///{home / 'mlflow.db'}"
    study = optuna.create_study(study_name="partial", storage=f"sqlite:///{home / 'optuna.db'}")
    trial = study.ask()
    worker = MlflowTracker(uri)
    run_id = worker.start_trial(lost_trial_start(study, study._storage.get_trial(trial._trial_id)))
    for step in (1, 2, 3, 4):
        trial.report(1.0 / step, step)
    worker.log_steps(run_id, "loss", [(1, 1.0, 0), (2, 0.5, 0)])  # a flush before the worker died
    study.tell(trial, state=TrialState.FAIL)
    make_stale_handler(MlflowTracker(uri), max_retries=0)(study, study._storage.get_trial(trial._trial_id))
    reconcile(study, MlflowTracker(uri), "loss", 4)
    assert _curve(mlflow_client, run_id) == [(1, 1.0), (2, 0.5), (3, 1 / 3), (4, 0.25)]


class _Counting(MlflowTracker):
    """Counts the records it is asked to find."""

    found = 0

    def find_trial(self, study_name: str, trial_id: int) -> str | None:
        self.found += 1
        return super().find_trial(study_name, trial_id)


def test_a_trial_failed_by_its_worker_is_left_as_recorded(home: Path) -> None:
    uri = f"sqlite:///{home / 'mlflow.db'}"
    study = optuna.create_study(study_name="raised", storage=f"sqlite:///{home / 'optuna.db'}")
    trial = study.ask()
    tracker = MlflowTracker(uri)
    tracker.end_trial(
        autotweak.tracking.TrialRecord(
            run_id=tracker.start_trial(lost_trial_start(study, study._storage.get_trial(trial._trial_id))),
            number=0,
            state="failed",
            metric="loss",
            value=None,
            steps=[(1, 0.5, 0)],
            duration=1.0,
            compute=None,
            failure="ValueError: boom",
        )
    )
    trial.report(0.5, 1)
    trial.set_user_attr("autotweak.failure", "ValueError: boom")  # the worker said how it ended
    study.tell(trial, state=TrialState.FAIL)
    counting = _Counting(uri)
    reconcile(study, counting, "loss", 1)
    assert counting.found == 0  # its worker wrote its record, curve and all: nothing is read again
