"""Share the winner: trial.log_model uploads, report --register puts the best model in the registry."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import pytest

import autotweak
from autotweak.report import register_best_model
from autotweak.testing.services import mlflow_server
from autotweak.tracking import MlflowTracker, TrialStart
from tests.helpers import load, mlflow_runs
from tests.report.helpers import run_cli
from tests.report.report_objectives import ref
from tests.report.test_analysis import TWEAKS


def test_best_model_is_registered_with_its_lineage(home, make_experiment, mlflow_client):
    exp = _saving(make_experiment, name="share", budget={"trials": 4})
    autotweak.optimize(exp)
    study = load(exp)
    best = study.best_trial
    runs = mlflow_runs(mlflow_client, "share")
    best_run = runs.children[best.number]
    assert best.user_attrs["autotweak.model"] == f"runs:/{best_run.info.run_id}/model"
    assert [a.path for a in mlflow_client.list_artifacts(best_run.info.run_id, "model")] == [
        "model/weights.txt"
    ]

    cli = run_cli(home, "report", "share", "--register", "share-winner")
    assert "registered the best trial's model as 'share-winner' version 1" in cli.stdout
    version = mlflow_client.get_model_version("share-winner", "1")
    assert version.run_id == best_run.info.run_id
    assert version.source == f"runs:/{best_run.info.run_id}/model"
    assert version.tags["autotweak.study"] == "share"
    assert version.tags["autotweak.trial_number"] == str(best.number)
    assert float(version.tags["autotweak.score"]) == best.value
    assert json.loads(version.tags["autotweak.config"])["a"] == best.params["a"]
    assert version.tags["autotweak.study_run_id"] == runs.parents[0].info.run_id
    assert "autotweak.git_commit" in version.tags or "autotweak.version.autotweak" in version.tags
    parent = mlflow_client.get_run(runs.parents[0].info.run_id)
    assert parent.data.tags["autotweak.registered_model"] == "share-winner/1"
    mlflow_client.download_artifacts(best_run.info.run_id, "model", str(home.parent / "dl"))
    saved = (home.parent / "dl" / "model" / "weights.txt").read_text()
    assert saved == f"a={best.params['a']} b={best.params['b']} c={best.params['c']}\n"

    again = register_best_model(load(exp), "share-winner", f"sqlite:///{home / 'mlflow.db'}")
    assert str(again.version) == "2", "registering again adds a version"


def test_register_without_a_logged_model_says_what_to_do(home, make_experiment):
    exp = make_experiment(name="nomodel", budget={"trials": 2})
    autotweak.optimize(exp)
    with pytest.raises(autotweak.AutotweakError, match=r"logged no model; the objective must save it"):
        register_best_model(load(exp), "m", f"sqlite:///{home / 'mlflow.db'}")


def test_register_on_demand_from_a_registry_that_does_not_answer_says_so_at_once(
    home, make_experiment, monkeypatch
):
    """``report --register``: MLflow's client would retry for minutes, silent."""
    exp = _saving(make_experiment, name="deadreg", budget={"trials": 2})
    autotweak.optimize(exp)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "http://127.0.0.1:9")  # nothing listens on port 9
    started = time.monotonic()
    with pytest.raises(autotweak.AutotweakError) as refused:
        register_best_model(load(exp), "m", f"sqlite:///{home / 'mlflow.db'}")
    assert str(refused.value) == (
        "model registry http://127.0.0.1:9: no MLflow server answers (connection refused); "
        "start it, or fix or unset MLFLOW_REGISTRY_URI, which names it"
    )
    assert time.monotonic() - started < 60, "one request to the registry, not minutes of retries"


@pytest.mark.timeout(120)  # the old code waited out MLflow's four minutes of retries on the tracking server
def test_register_on_demand_with_a_live_registry_and_a_dead_tracking_server_names_the_tracking_server(
    home, make_experiment, monkeypatch, tmp_path, mlflow_template
):
    """MLFLOW_REGISTRY_URI answers, the study's tracking server does not: the model's run is read there."""
    exp = _saving(make_experiment, name="deadtrack", budget={"trials": 2})
    autotweak.optimize(exp)
    shutil.copy(mlflow_template, tmp_path / "registry.db")  # migrated once per session
    with mlflow_server(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "registry") as registry:
        monkeypatch.setenv("MLFLOW_REGISTRY_URI", registry)
        with pytest.raises(autotweak.AutotweakError) as refused:
            register_best_model(load(exp), "m", "http://127.0.0.1:9")  # nothing listens on port 9
    assert str(refused.value) == (
        "tracking URI http://127.0.0.1:9: no MLflow server answers (connection refused); "
        "start it: the best trial's model is kept in its runs"
    )


def test_log_model_refuses_a_missing_path(home, make_experiment):
    exp = make_experiment(name="missing", budget={"trials": 1})
    with autotweak.Study(exp) as study:
        trial = study.ask()
        assert trial is not None
        with pytest.raises(
            autotweak.AutotweakError, match=r"'path' of log_model\(\) must be an existing file"
        ):
            trial.log_model(home / "nope.pt")
        study.tell(trial, 1.0)


def test_log_model_says_that_a_study_run_with_tracking_off_keeps_no_model(home, make_experiment):
    (home / "m.pt").write_text("weights")
    exp = make_experiment(name="untracked", budget={"trials": 1})
    with autotweak.Study(exp, track=False) as study:
        trial = study.ask()
        assert trial is not None
        with pytest.raises(
            autotweak.AutotweakError,
            match=r"log_model\(\) needs a tracker that keeps models, but trial 0 is recorded by the "
            r"'NullTracker' tracker, which keeps none; run the study with tracking on",
        ):
            trial.log_model(home / "m.pt")
        study.tell(trial, 1.0)


def test_log_model_goes_through_the_studys_tracker_and_only_mlflow_runs_are_registered(
    home, make_experiment, monkeypatch
):
    """The model's address is the tracker's; one that is not an MLflow run's cannot be registered."""
    kept: list[tuple[str, str]] = []

    def elsewhere(self: MlflowTracker, run_id: str, path: Path) -> str:
        kept.append((run_id, path.name))
        return f"s3://models/{run_id}"

    monkeypatch.setattr(MlflowTracker, "log_model", elsewhere)
    (home / "m.pt").write_text("weights")
    exp = make_experiment(name="elsewhere", budget={"trials": 1})
    with autotweak.Study(exp) as study:
        trial = study.ask()
        assert trial is not None
        assert trial.log_model(home / "m.pt") == f"s3://models/{kept[0][0]}"
        study.tell(trial, 1.0)
    assert kept[0][1] == "m.pt"
    assert load(exp).trials[0].user_attrs["autotweak.model"] == f"s3://models/{kept[0][0]}"
    with pytest.raises(
        autotweak.AutotweakError, match=r"kept its model at 's3://models/.*', not in an MLflow run"
    ):
        register_best_model(load(exp), "m", f"sqlite:///{home / 'mlflow.db'}")


def test_register_from_a_store_that_lacks_the_models_run_names_the_run_and_the_store(home, make_experiment):
    exp = _saving(make_experiment, name="moved", budget={"trials": 1})
    autotweak.optimize(exp)
    run_id = load(exp).best_trial.user_attrs["autotweak.model"].split("/")[1]
    other = f"sqlite:///{home / 'other.db'}"
    with pytest.raises(
        autotweak.AutotweakError,
        match=rf"kept its model in MLflow run {run_id}, which tracking URI {other} does not hold",
    ):
        register_best_model(load(exp), "m", other)


def _saving(make_experiment, **overrides):
    return make_experiment(
        objective=ref("saving"),
        base={"a": 0, "b": 0, "c": "u"},
        tweaks=TWEAKS,
        metric={"name": "score", "direction": "maximize", "steps": 3},
        sampler="grid",
        **overrides,
    )


def test_the_winner_is_registered_when_the_study_ends_and_only_once(home, make_experiment, mlflow_client):
    exp = _saving(make_experiment, name="auto-share", budget={"trials": 4})
    result = autotweak.optimize(exp)
    best = load(exp).best_trial
    assert result.registered_model == "auto-share/1"
    version = mlflow_client.get_model_version("auto-share", "1")
    assert version.run_id == mlflow_runs(mlflow_client, "auto-share").children[best.number].info.run_id
    assert version.tags["autotweak.trial_number"] == str(best.number)

    # Resumed with a budget that adds no trial: the same winner is not registered twice.
    again = autotweak.optimize(exp, resume=True)
    assert again.registered_model is None
    assert [str(v.version) for v in mlflow_client.search_model_versions("name='auto-share'")] == ["1"]


def test_registration_by_name_or_not_at_all(home, make_experiment, mlflow_client):
    named = autotweak.optimize(
        _saving(make_experiment, name="named", budget={"trials": 2}, register_model="team-model")
    )
    assert named.registered_model == "team-model/1"
    off = autotweak.optimize(_saving(make_experiment, name="off", budget={"trials": 2}, register_model=False))
    assert off.registered_model is None
    assert not mlflow_client.search_registered_models("name='off'")
    plain = autotweak.optimize(make_experiment(name="plain", budget={"trials": 2}))
    assert plain.registered_model is None, "no model logged, nothing registered"


def test_a_named_register_model_whose_best_trial_logged_no_model_is_warned_of(home, make_experiment, caplog):
    """The spec asks for a model by name: ending with none registered is said, with the fix."""
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        result = autotweak.optimize(
            make_experiment(name="asked", budget={"trials": 2}, register_model="asked-model")
        )
        plain = autotweak.optimize(make_experiment(name="unasked", budget={"trials": 2}))
    assert result.registered_model is None and plain.registered_model is None
    [said] = [r.getMessage() for r in caplog.records if "register_model" in r.getMessage()]
    assert (
        "'register_model' names model 'asked-model', but study 'asked' registered none: its best trial, "
        in said
    )
    assert "logged no model; the objective keeps one with trial.log_model(path)" in said


@pytest.mark.parametrize("bad", ["", "  ", 3, ["m"]])
def test_register_model_must_be_a_flag_or_a_name(make_experiment, bad):
    with pytest.raises(autotweak.SpecError, match=r"register_model.*must be true, false or a model name"):
        make_experiment(register_model=bad)


def test_log_model_waits_for_a_record_still_opening(home, make_experiment, mlflow_client):
    """A worker opens the record in the background: an objective that logs at once still finds it."""
    exp = _saving(make_experiment, name="quick", budget={"trials": 2})
    original = MlflowTracker.start_trial

    def slow(self: MlflowTracker, start: TrialStart) -> str:
        time.sleep(0.5)  # longer than the whole objective
        return original(self, start)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MlflowTracker, "start_trial", slow)
        result = autotweak.optimize(exp)
    assert result.summary.counts["complete"] == 2
    runs = mlflow_runs(mlflow_client, "quick")
    for trial in load(exp).trials:
        assert trial.user_attrs["autotweak.model"] == f"runs:/{runs.children[trial.number].info.run_id}/model"
