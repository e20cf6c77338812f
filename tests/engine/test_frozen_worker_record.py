"""A worker frozen (SIGSTOP) past the grace period wakes after the sweep closed its trial's record."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
import yaml
from optuna.trial import TrialState

import autotweak
from autotweak.engine._stale import LOST_WORKER, fail_stale
from autotweak.engine._storage import make_storage
from autotweak.engine._worker import make_stale_handler
from autotweak.tracking import MlflowTracker
from tests.conftest import base_spec
from tests.helpers import load, mlflow_runs

# An ask/tell loop that reports one step of its trial, says so, then waits for a line to tell it.
FROZEN = """
import sys, autotweak
with autotweak.Study("exp.yaml") as study:
    trial = study.ask()
    trial.report(0.5, 1)
    print("reported", flush=True)
    sys.stdin.readline()
    study.tell(trial, 0.25)
"""


def _swept(exp: autotweak.Experiment, uri: str) -> None:
    """Sweep the study as its other workers do, until its frozen worker's trial is failed as stale."""
    storage = make_storage(
        str(exp.storage),
        heartbeat_interval=1,
        grace_period=2,
        on_stale=make_stale_handler(MlflowTracker(uri), exp),
    )
    study = optuna.load_study(study_name=exp.name, storage=storage)
    deadline = time.monotonic() + 60
    while study.trials[0].state != TrialState.FAIL:  # its heartbeat frozen, it goes stale past the grace
        assert time.monotonic() < deadline, "the frozen worker's trial never went stale"
        time.sleep(0.2)
        fail_stale(study)


@pytest.mark.timeout(180)
def test_a_frozen_worker_that_wakes_leaves_the_record_the_sweep_closed_alone(home, mlflow_client):
    """It wrote its own close on top: ``duration_s`` and ``compute`` held two points, the later its own."""
    spec = base_spec(name="frozen", storage=f"sqlite:///{home / 'optuna.db'}", budget={"trials": 1})
    spec["execution"] = {"workers": 1, "heartbeat_interval": 1, "grace_period": 2, "max_retries": 0}
    (home.parent / "exp.yaml").write_text(yaml.safe_dump(spec))
    exp = autotweak.Experiment.from_dict(spec)
    worker = subprocess.Popen(
        [sys.executable, "-c", FROZEN],
        cwd=home.parent,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert worker.stdout is not None and worker.stdin is not None
        assert worker.stdout.readline().strip() == "reported"
        os.kill(worker.pid, signal.SIGSTOP)
        _swept(exp, f"sqlite:///{home / 'mlflow.db'}")
        (run,) = mlflow_runs(mlflow_client, "frozen").children.values()
        assert run.info.status == "FAILED", "the sweep closed the record"
        os.kill(worker.pid, signal.SIGCONT)
        out, _ = worker.communicate("\n", timeout=120)
    finally:
        worker.kill()
    assert worker.returncode == 0, out
    (trial,) = load(exp).trials
    assert trial.user_attrs["autotweak.failure"] == LOST_WORKER
    history = {
        key: mlflow_client.get_metric_history(run.info.run_id, key) for key in ("duration_s", "compute")
    }
    assert {key: len(points) for key, points in history.items()} == {"duration_s": 1, "compute": 1}, history
    (closed,) = mlflow_runs(mlflow_client, "frozen").children.values()
    assert closed.data.metrics["duration_s"] == run.data.metrics["duration_s"], "the sweep's, kept"
    assert (closed.info.status, closed.data.tags["autotweak.failure"]) == ("FAILED", LOST_WORKER)
