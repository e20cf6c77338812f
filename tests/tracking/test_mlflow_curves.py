"""A trial's MLflow curve holds every point Optuna keeps: non-finite ones, and a lost worker's."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import optuna
from mlflow import MlflowClient
from optuna.trial import TrialState

import autotweak
from autotweak._quiet import quiet_optuna
from autotweak.engine._reconcile import lost_trial_start, reconcile
from autotweak.engine._stale import LOST_WORKER, fail_stale
from autotweak.engine._storage import make_storage
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
        study.tell(diverged, state="failed")  # a failed trial: its curve is still what Optuna keeps
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


def _lost_trial(home: Path, make_experiment, name: str, steps: list[float]) -> tuple[optuna.Study, str]:
    """A trial whose worker opened its record, reported ``steps`` to Optuna, then died; and its run id."""
    study = optuna.create_study(
        study_name=name,
        storage=make_storage(
            f"sqlite:///{home / 'optuna.db'}",
            heartbeat_interval=1,
            grace_period=2,
            on_stale=make_stale_handler(MlflowTracker(f"sqlite:///{home / 'mlflow.db'}"), make_experiment()),
        ),
    )
    with quiet_optuna():  # Optuna's note that heartbeats belong to Study.optimize: autotweak's own loop
        trial = study.ask()
    study._storage.record_heartbeat(trial._trial_id)
    worker = MlflowTracker(f"sqlite:///{home / 'mlflow.db'}")  # dies before its writer flushed a point
    run_id = worker.start_trial(lost_trial_start(study, study._storage.get_trial(trial._trial_id)))
    for step, value in enumerate(steps, start=1):
        trial.report(value, step)
    return study, run_id


def test_the_stale_sweep_writes_a_lost_workers_curve(home: Path, make_experiment, mlflow_client) -> None:
    study, run_id = _lost_trial(home, make_experiment, "lost", [0.9, 0.7, math.nan])
    time.sleep(3.5)  # past the grace period (2 s; SQLite keeps heartbeats to the second): the worker is lost
    fail_stale(study)  # what the study's other workers, a resume or the study's end run
    run = mlflow_client.get_run(run_id)
    assert run.info.status == "FAILED" and run.data.tags["autotweak.failure"] == LOST_WORKER
    assert _curve(mlflow_client, run_id) == [(1, 0.9), (2, 0.7), (3, None)]
    for _ in range(2):  # the study's end, then a resume: the curve is not written again
        reconcile(study, MlflowTracker(f"sqlite:///{home / 'mlflow.db'}"), "loss", 3)
        assert _curve(mlflow_client, run_id) == [(1, 0.9), (2, 0.7), (3, None)]


def test_a_curve_the_sweep_could_not_write_is_restored_when_reconciling(
    home: Path, make_experiment, mlflow_client
) -> None:
    """The sweep failed the trial (its reason is on it) while the tracker could not take the points."""
    study, run_id = _lost_trial(home, make_experiment, "partial", [1.0, 0.5, 1 / 3, 0.25])
    MlflowTracker(f"sqlite:///{home / 'mlflow.db'}").log_steps(run_id, "loss", [(1, 1.0, 0), (2, 0.5, 0)])
    trial_id = study.get_trials()[0]._trial_id
    study._storage.set_trial_user_attr(trial_id, "autotweak.failure", LOST_WORKER)
    study._storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
    MlflowTracker(f"sqlite:///{home / 'mlflow.db'}").mark_failed(run_id, LOST_WORKER)  # closed without them
    assert _curve(mlflow_client, run_id) == [(1, 1.0), (2, 0.5)]
    reconcile(study, MlflowTracker(f"sqlite:///{home / 'mlflow.db'}"), "loss", 4)
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
