"""A study starts with both of its records or not at all; a tracker that cannot record says so at once."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time

import optuna
import pytest
import yaml
from mlflow import MlflowClient

import autotweak
from autotweak._locations import resolve_storage_url
from autotweak.exceptions import TrackingError
from autotweak.testing.services import free_port
from tests.conftest import base_spec
from tests.helpers import mlflow_runs
from tests.tracking.test_server_check import MLFLOW_OK, fake_server


def _names() -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(resolve_storage_url(None))]


def _cli(*args: str, cwd) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autotweak", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def _backend_down(path: str) -> tuple[int, str, str]:
    """A tracking server whose API answers the quick check, then fails (its backend store is down)."""
    if path.startswith("/api/2.0/mlflow/experiments/search"):
        return MLFLOW_OK
    return 500, "application/json", json.dumps({"error_code": "INTERNAL_ERROR", "message": "backend down"})


def test_optimize_with_no_tracking_server_fails_in_seconds_and_creates_no_study(home):
    (home.parent / "exp.yaml").write_text(yaml.safe_dump(base_spec(name="x")))
    uri = f"http://127.0.0.1:{free_port()}"
    began = time.monotonic()
    done = _cli("optimize", "exp.yaml", "--trials", "2", "--tracking-uri", uri, cwd=home.parent)
    assert time.monotonic() - began < 60
    assert done.returncode != 0
    assert f"tracking URI {uri}: no MLflow server answers (connection refused)" in done.stderr
    assert "Traceback" not in done.stderr
    assert "x" not in _names(), "no orphan study is left behind"


def test_a_record_that_fails_after_the_study_is_created_leaves_no_study(home, make_experiment, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with fake_server(_backend_down) as uri:
        exp = make_experiment(name="orphan", tracking_uri=uri, budget={"trials": 2})
        with pytest.raises(
            TrackingError, match=rf"^tracking URI {uri}: could not open the record of study 'orphan': "
        ):
            autotweak.optimize(exp)
    assert "orphan" not in _names()
    result = autotweak.optimize(make_experiment(name="orphan", budget={"trials": 2}))
    assert result.summary.counts["complete"] == 2, "the name is free for the next start"


def test_a_failed_record_on_resume_keeps_the_study(home, make_experiment, monkeypatch):
    autotweak.optimize(make_experiment(name="kept", budget={"trials": 2}))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with (
        fake_server(_backend_down) as uri,
        pytest.raises(TrackingError, match="could not open the record of study 'kept'"),
    ):
        autotweak.optimize(make_experiment(name="kept", tracking_uri=uri, budget={"trials": 3}), resume=True)
    assert "kept" in _names()


def test_a_parent_run_that_cannot_be_written_is_closed_failed(
    home, make_experiment, mlflow_client, monkeypatch
):
    def full_disk(self, run_id, dictionary, artifact_file):
        raise OSError("No space left on device")

    monkeypatch.setattr(MlflowClient, "log_dict", full_disk)
    with pytest.raises(
        TrackingError, match=r"could not open the record of study 'full': No space left on device$"
    ):
        autotweak.optimize(make_experiment(name="full"))
    assert "full" not in _names()
    parents = mlflow_runs(mlflow_client, "full").parents
    assert [run.info.status for run in parents] == ["FAILED"]


def test_resume_by_name_opens_the_parent_run_a_study_lacks(home, make_experiment, mlflow_client):
    autotweak.optimize(make_experiment(name="untracked", budget={"trials": 2}), track=False)
    done = _cli("resume", "untracked", "--trials", "3", cwd=home.parent)
    assert done.returncode == 0, done.stderr
    (parent,) = mlflow_runs(mlflow_client, "untracked").parents
    files = {f.path for f in mlflow_client.list_artifacts(parent.info.run_id)}
    assert "spec.json" in files
    assert not any(path.startswith("<") for path in files)


def test_a_base_config_missing_a_tweaked_parameter_warns_that_no_trial_runs_it(caplog):
    from autotweak.engine._study import create_study

    spec = base_spec(
        base={"x": 0.0},
        tweaks={"x": {"type": "float", "low": -5, "high": 5}, "depth": {"type": "int", "low": 1, "high": 4}},
    )
    storage = optuna.storages.InMemoryStorage()
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        study = create_study(autotweak.Experiment.from_dict(spec), storage)
    assert not study.trials, "no baseline trial is queued"
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [
        "the base config does not set depth, which the tweaks search: no trial runs the base config to "
        "compare against (give it in base, or set 'baseline: false' to say so)"
    ]
    caplog.clear()
    create_study(autotweak.Experiment.from_dict({**spec, "name": "quiet", "baseline": False}), storage)
    assert not caplog.records, "baseline: false says it is wanted"


def test_a_misspelled_study_name_gets_the_near_one_and_a_long_listing_is_cut():
    from autotweak.engine._study import load_study
    from autotweak.exceptions import StudyNotFoundError

    storage = optuna.storages.InMemoryStorage()
    for i in range(25):
        optuna.create_study(storage=storage, study_name=f"sweep-{i:02d}")
    optuna.create_study(storage=storage, study_name="digits-mlp")
    with pytest.raises(StudyNotFoundError) as caught:
        load_study("digits-mpl", storage)
    message = str(caught.value)
    assert message.startswith("no study named 'digits-mpl' (did you mean 'digits-mlp'?) in the storage ")
    listed = ", ".join(["digits-mlp", *(f"sweep-{i:02d}" for i in range(19))])
    assert (
        f"(studies there: {listed} and 6 more: `autotweak status` lists them all); check the name" in message
    )


@pytest.mark.parametrize(
    ("metric", "said"),
    [
        ({"name": "val_loss", "direction": "maximize"}, "'val_loss' reads as a metric to minimize (loss)"),
        ({"name": "val_accuracy", "direction": "minimize"}, "'val_accuracy' reads as a metric to maximize"),
        ({"name": "neg_log_loss", "direction": "maximize"}, None),
        ({"name": "val_accuracy", "direction": "maximize"}, None),
        ({"name": "objective", "direction": "minimize"}, None),
    ],
)
def test_a_direction_that_reads_wrong_for_the_metric_name_warns_as_the_study_is_created(caplog, metric, said):
    """Maximizing a loss found the worst config, and nothing said so."""
    from autotweak.engine._study import create_study

    spec = base_spec(metric=metric)
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        create_study(autotweak.Experiment.from_dict(spec), optuna.storages.InMemoryStorage())
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if said is None:
        assert warned == []
        return
    assert len(warned) == 1, warned
    assert warned[0].startswith(f"'metric.direction' is {metric['direction']}, but {said}")
    assert warned[0].endswith("fix the direction and start the study again under a new name")


def test_a_base_key_near_a_tweaked_parameter_it_misses_is_named(caplog):
    """``widht: 64`` in base: the warning named only width, and the typo stayed out of sight."""
    from autotweak.engine._study import create_study

    spec = base_spec(
        base={"x": 0.0, "widht": 64, "optim": {"lrate": 0.1}},
        tweaks={
            "x": {"type": "float", "low": -5, "high": 5},
            "width": {"type": "int", "low": 16, "high": 256},
            "optim.lr": {"type": "float", "low": 0.01, "high": 1.0},
        },
    )
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        create_study(autotweak.Experiment.from_dict(spec), optuna.storages.InMemoryStorage())
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [
        "the base config does not set width, optim.lr, which the tweaks search (base sets 'widht': did you "
        "mean 'width'?; base sets 'optim.lrate': did you mean 'optim.lr'?): no trial runs the base config to "
        "compare against (give them in base, or set 'baseline: false' to say so)"
    ]
