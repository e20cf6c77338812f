"""Scaling out is a change of URL: Optuna on PostgreSQL, MLflow as a tracking server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import optuna
import pytest
import yaml
from mlflow import MlflowClient
from optuna.trial import TrialState

import autotweak
from autotweak.report import build_report
from tests.conftest import base_spec, objective
from tests.engine.test_workers import assert_stores_agree, start_cli, wait_for_lines
from tests.report.test_sessions import joined_line, joined_study


def test_worker_processes_on_postgres_and_an_mlflow_server(home, make_experiment, shared_stores):
    exp = make_experiment(
        name="pg-two-workers",
        objective=objective("marked"),
        base={"marker": str(home / "m.txt"), "sleep": 0.05},
        budget={"trials": 8},
        execution={"workers": 2, "heartbeat_interval": 1, "grace_period": 5},
        storage=shared_stores.storage,
        tracking_uri=shared_stores.tracking_uri,
    )
    result = autotweak.optimize(exp)
    study = optuna.load_study(study_name=exp.name, storage=shared_stores.storage)
    assert [t.number for t in study.trials] == list(range(8))
    assert result.summary.counts["complete"] == 8
    assert not (home / "optuna.db").exists(), "nothing fell back to the embedded default"
    assert_stores_agree(MlflowClient(shared_stores.tracking_uri), study)


def test_a_second_machine_joins_with_autotweak_worker(home, make_experiment, shared_stores):
    exp = make_experiment(
        name="pg-join",
        budget={"trials": 4},
        storage=shared_stores.storage,
        tracking_uri=shared_stores.tracking_uri,
    )
    autotweak.Study(exp).close()
    env = {
        **os.environ,
        "AUTOTWEAK_STORAGE": shared_stores.storage,
        "MLFLOW_TRACKING_URI": shared_stores.tracking_uri,
    }
    run = subprocess.run(
        [sys.executable, "-m", "autotweak", "worker", "pg-join"],
        cwd=home.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    study = optuna.load_study(study_name="pg-join", storage=shared_stores.storage)
    assert_stores_agree(MlflowClient(shared_stores.tracking_uri), study)
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 4


@pytest.mark.slow
def test_the_report_of_a_study_joined_on_postgres_counts_each_sessions_trials(home, shared_stores):
    stores = {"storage": shared_stores.storage, "tracking_uri": shared_stores.tracking_uri}
    by_main, by_worker = joined_study(home, "pg-joined-report", **stores)
    study = optuna.load_study(study_name="pg-joined-report", storage=shared_stores.storage)
    assert joined_line(by_main, by_worker) in build_report(study).to_markdown()
    assert_stores_agree(MlflowClient(shared_stores.tracking_uri), study)


@pytest.mark.slow
def test_postgres_restarted_during_a_study(home, shared_stores):
    marker = home / "m.txt"
    spec = home / "exp.yaml"
    spec.write_text(
        yaml.safe_dump(
            base_spec(
                name="pg-restart",
                objective=objective("checkpointed"),
                base={"marker": str(marker), "sleep": 0.3, "steps": 4},
                metric={"name": "loss", "direction": "minimize", "steps": 4},
                budget={"trials": 6},
                execution={"workers": 2, "heartbeat_interval": 1, "grace_period": 6},
                storage=shared_stores.storage,
                tracking_uri=shared_stores.tracking_uri,
            )
        )
    )
    proc = start_cli(["optimize", str(spec)], home.parent)
    try:
        wait_for_lines(marker, 3)
        shared_stores.pg.ctl("restart", "-m", "fast")
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out
    study = optuna.load_study(study_name="pg-restart", storage=shared_stores.storage)
    counted = [t for t in study.trials if "autotweak.retry_of" not in t.user_attrs]
    assert len(counted) == 6
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    assert_stores_agree(MlflowClient(shared_stores.tracking_uri), study)
