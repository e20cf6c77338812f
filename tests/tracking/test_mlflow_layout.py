"""The MLflow record people read: parent run per study, child run per trial, honest states."""

from __future__ import annotations

import atexit
from pathlib import Path

import pytest
import yaml
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

import autotweak
from tests.conftest import base_spec, objective
from tests.helpers import load, mlflow_runs

STATUS = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "KILLED", TrialState.FAIL: "FAILED"}
STATE_TAG = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}


@pytest.fixture
def finished_study(home, make_experiment):
    exp = make_experiment(
        name="layout",
        objective=objective("curve"),
        base={"steps": 8, "lr": 0.1},
        tweaks={"x": {"type": "float", "low": 0.0, "high": 1.0}},
        metric={"name": "acc", "direction": "maximize", "steps": 8},
        pruner={"name": "median", "args": {"n_startup_trials": 2, "n_warmup_steps": 1}},
        budget={"trials": 10},
        tags={"team": "vision"},
    )
    return exp, autotweak.optimize(exp)


def test_one_parent_and_one_child_per_trial_with_matching_states(finished_study, mlflow_client):
    exp, _ = finished_study
    study = load(exp)
    runs = mlflow_runs(mlflow_client, exp.name)
    assert len(runs.parents) == 1 and not runs.duplicates
    assert sorted(runs.children) == [t.number for t in study.trials]
    assert {t.state for t in study.trials} >= {TrialState.COMPLETE, TrialState.PRUNED}
    parent_id = runs.parents[0].info.run_id
    for trial in study.trials:
        run = runs.children[trial.number]
        assert run.info.status == STATUS[trial.state]
        assert run.data.tags["autotweak.state"] == STATE_TAG[trial.state]
        assert run.data.tags["mlflow.parentRunId"] == parent_id
        assert run.info.run_name == f"trial-{trial.number:04d}"


def test_child_runs_hold_config_curve_final_value_and_provenance(finished_study, mlflow_client):
    exp, _ = finished_study
    study = load(exp)
    runs = mlflow_runs(mlflow_client, exp.name)
    for trial in study.trials:
        run = runs.children[trial.number]
        assert run.data.params["x"] == str(trial.params["x"])
        assert run.data.params["lr"] == "0.1", "the base config is logged with the tweaks"
        history = mlflow_client.get_metric_history(run.info.run_id, "acc")
        assert {(m.step, m.value) for m in history} == set(trial.intermediate_values.items())
        assert run.data.metrics["final_acc"] == pytest.approx(trial.value)
        assert run.data.metrics["duration_s"] > 0
        tags = run.data.tags
        assert tags["autotweak.optuna_trial_id"] == str(trial._trial_id)
        assert tags["autotweak.study"] == exp.name
        assert tags["autotweak.seed"] == "0"
        assert tags["autotweak.attempt"] == "1"
        assert int(tags["autotweak.pid"]) > 0 and tags["autotweak.host"]
        for package in ("autotweak", "optuna", "mlflow", "torch"):
            assert tags[f"autotweak.version.{package}"]
        assert tags["team"] == "vision"
        if trial.state == TrialState.PRUNED:
            assert max(trial.intermediate_values) < 8, "a pruned trial keeps its partial curve"
            # why, in both stores, as the learned pruner records it (the README's filter finds it)
            stopped_at = max(trial.intermediate_values)
            earlier = sum(
                t.state == TrialState.COMPLETE and t.datetime_complete < trial.datetime_complete
                for t in study.trials
            )
            assert trial.user_attrs["autotweak.pruner.rule"] == "MedianPruner"
            assert trial.user_attrs["autotweak.pruner.step"] == stopped_at
            assert trial.user_attrs["autotweak.pruner.n_complete"] == earlier
            assert tags["autotweak.pruner.rule"] == "MedianPruner"
            assert tags["autotweak.pruner.step"] == str(stopped_at)
        else:
            assert not any(key.startswith("autotweak.pruner.") for key in tags)


def test_parent_run_holds_spec_components_and_summary(finished_study, mlflow_client):
    exp, result = finished_study
    parent = mlflow_runs(mlflow_client, exp.name).parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["sampler"] == "random" and parent.data.params["pruner"] == "median"
    assert parent.data.params["space.x"] == "float[0.0, 1.0]"
    assert "TPESampler" not in parent.data.tags["autotweak.meta.sampler"]
    assert "RandomSampler" in parent.data.tags["autotweak.meta.sampler"]
    assert parent.data.metrics["best_value"] == pytest.approx(result.summary.best_value)
    assert parent.data.metrics["n_complete"] == result.summary.counts["complete"]
    assert parent.data.metrics["n_pruned"] == result.summary.counts["pruned"]
    assert parent.data.tags["autotweak.best_trial"] == str(result.summary.best_number)
    artifacts = {a.path for a in mlflow_client.list_artifacts(parent.info.run_id)}
    assert {"spec.json", "meta.json", "summary.json"} <= artifacts


def test_spec_file_is_kept_as_an_artifact(home, tmp_path, mlflow_client):
    spec = Path("exp.yaml")
    spec.write_text(
        f"name: filed\nobjective: {objective('quadratic')}\ntweaks: {{x: {{type: float, low: 0, high: 2}}}}\n"
        "metric: {name: loss, direction: minimize}\nbudget: {trials: 1}\n"
    )
    autotweak.optimize(spec)
    parent = mlflow_runs(mlflow_client, "filed").parents[0]
    assert "exp.yaml" in {a.path for a in mlflow_client.list_artifacts(parent.info.run_id)}


def test_git_provenance_of_the_users_code(home, tmp_path_factory, mlflow_client):
    """The commit is that of the objective's repository, wherever the spec file and the shell are."""
    import subprocess

    code = tmp_path_factory.mktemp("code")
    (code / "userobj.py").write_text("def train(config):\n    return (config['x'] - 1.0) ** 2\n")
    git = ["git", "-c", "user.email=a@b", "-c", "user.name=a"]
    subprocess.run(["git", "init", "-q"], cwd=code, check=True)
    subprocess.run(["git", "add", "userobj.py"], cwd=code, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], cwd=code, check=True)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=code, capture_output=True, text=True, check=True
    ).stdout.strip()
    spec = home.parent / "specs" / "exp.yaml"  # outside the code's repository, as is the shell
    spec.parent.mkdir()
    spec.write_text(
        yaml.safe_dump(base_spec(name="git", objective=f"{code / 'userobj.py'}:train", budget={"trials": 1}))
    )
    from autotweak.engine import _provenance

    _provenance._static.cache_clear()
    autotweak.optimize(spec)
    run = mlflow_runs(mlflow_client, "git").children[0]
    assert run.data.tags["autotweak.git_commit"] == head
    assert run.data.tags["mlflow.source.git.commit"] == head
    assert run.data.tags["autotweak.git_dirty"] == "false"
    assert "autotweak.git_untracked_objective" not in run.data.tags

    # A file git does not track is in no commit: the run is dirty although `git status` is clean.
    # It is named by its path in the repository: a name alone is ambiguous in a tree of folders.
    (code / "models").mkdir()
    (code / "models" / "newobj.py").write_text((code / "userobj.py").read_text())
    objective = f"{code / 'models' / 'newobj.py'}:train"
    spec.write_text(yaml.safe_dump(base_spec(name="new", objective=objective, budget={"trials": 1})))
    _provenance._static.cache_clear()
    autotweak.optimize(spec)
    run = mlflow_runs(mlflow_client, "new").children[0]
    assert run.data.tags["autotweak.git_commit"] == head
    assert run.data.tags["autotweak.git_dirty"] == "true"
    assert run.data.tags["autotweak.git_untracked_objective"] == "models/newobj.py"


def test_records_left_open_by_a_crash_are_closed_from_optuna(home, make_experiment, mlflow_client):
    """A worker killed between telling Optuna and closing the run: the study repairs the record."""
    exp = make_experiment(name="crash", budget={"trials": 1})
    crashed = autotweak.Study(exp)
    trial = crashed.ask()
    assert trial is not None
    for step in (1, 2, 3):
        trial.report(0.5 / step, step)
    crashed.optuna_study.tell(trial.optuna_trial, 0.1)  # Optuna knows; then the process "dies"
    atexit.unregister(crashed._at_exit)  # nothing closes it, not even Python's exit
    run_id = mlflow_runs(mlflow_client, "crash").children[0].info.run_id
    assert mlflow_client.get_run(run_id).info.status == "RUNNING"
    autotweak.Study(exp, resume=True).close()  # the next session on the study repairs the record
    run = mlflow_client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["autotweak.state"] == "complete"
    assert run.data.tags["autotweak.reconciled"] == "true"
    assert run.data.metrics["final_loss"] == pytest.approx(0.1)
    assert run.data.params["x"] == str(trial.config["x"])
    history = mlflow_client.get_metric_history(run_id, "loss")
    assert sorted(m.step for m in history) == [1, 2, 3], "no point is written twice"


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_finished_trial_without_a_record_gets_one_from_optuna(home, make_experiment, mlflow_client):
    """A trial that never had its record opened (say, its worker killed before its writer ran)."""
    exp = make_experiment(name="unrecorded", budget={"trials": 2})
    study = autotweak.Study(exp)
    bare = study.optuna_study.ask({"x": FloatDistribution(-5.0, 5.0)})
    for step in (1, 2):
        bare.report(0.5 / step, step)
    study.optuna_study.tell(bare, 0.2)
    resumed = autotweak.Study(exp, resume=True)  # finished just now: a live worker may still open it
    assert 0 not in mlflow_runs(mlflow_client, "unrecorded").children
    resumed.close()  # the end of the study opens and closes it
    runs = mlflow_runs(mlflow_client, "unrecorded")
    assert sorted(runs.children) == [0] and not runs.duplicates
    run = runs.children[0]
    assert run.info.status == "FINISHED" and run.data.tags["autotweak.state"] == "complete"
    assert run.data.tags["autotweak.reconciled"] == "true"
    assert run.data.params["x"] == str(bare.params["x"])
    assert [m.step for m in mlflow_client.get_metric_history(run.info.run_id, "loss")] == [1, 2]
    study.close()
    assert sorted(mlflow_runs(mlflow_client, "unrecorded").children) == [0], "not opened twice"


def test_a_parent_run_left_running_by_a_killed_start_is_closed_by_the_next(home, mlflow_client):
    """A process killed after making the parent run, before the study recorded it: resume makes another."""
    from autotweak.spec import Experiment
    from autotweak.tracking import MlflowTracker, StudyInfo

    spec = Experiment.from_dict(base_spec()).to_dict()
    tracker = MlflowTracker(f"sqlite:///{home / 'mlflow.db'}")
    first = tracker.start_study(StudyInfo(study_name="s", spec=spec, meta={}, storage="sqlite://"))
    other = tracker.start_study(StudyInfo(study_name="s2", spec=spec, meta={}, storage="sqlite://"))
    elsewhere = tracker.start_study(StudyInfo(study_name="s", spec=spec, meta={}, storage="sqlite:///b.db"))
    second = tracker.start_study(StudyInfo(study_name="s", spec=spec, meta={}, storage="sqlite://"))
    stray = mlflow_client.get_run(first)
    assert stray.info.status == "KILLED" and stray.data.tags["autotweak.superseded_by"] == second
    assert mlflow_client.get_run(second).info.status == "RUNNING"
    assert mlflow_client.get_run(other).info.status == "RUNNING", "another study's parent is left alone"
    assert mlflow_client.get_run(elsewhere).info.status == "RUNNING", "so is a namesake's of another storage"


def test_the_parent_runs_space_params_keep_steps_and_conditions():
    from autotweak.space import load_space
    from autotweak.tracking._mlflow_values import range_text

    cnn = load_space("cnn").to_dict()
    assert range_text(cnn["momentum"]) == "float[0.5, 0.99] when optimizer in ['sgd']"
    assert range_text({"type": "int", "low": 16, "high": 256, "step": 16}) == "int[16, 256] step 16"
    assert range_text(cnn["lr"]) == "float[0.0001, 0.1] log"


@pytest.mark.parametrize("length", [6000, 20_000], ids=["over-5000", "over-8000"])
def test_a_long_config_left_open_by_a_crash_is_closed_with_its_params(
    home, make_experiment, mlflow_client, length
):
    """The config tag once held cut JSON (5000 chars) that closing the record could not read."""
    notes = {f"n{i}": "x" * 1000 for i in range(length // 1000)}
    exp = make_experiment(name="longcfg", base={"x": 0.0, "notes": notes}, budget={"trials": 1})
    crashed = autotweak.Study(exp)
    trial = crashed.ask()
    assert trial is not None
    trial.report(0.5, 1)
    crashed.optuna_study.tell(trial.optuna_trial, 0.1)  # Optuna knows; then the process "dies"
    atexit.unregister(crashed._at_exit)  # nothing closes it, not even Python's exit
    run_id = mlflow_runs(mlflow_client, "longcfg").children[0].info.run_id
    autotweak.Study(exp, resume=True).close()  # the next session on the study repairs the record
    run = mlflow_client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["autotweak.state"] == "complete"
    if length > 8000:  # too long for a tag (MLflow's limit): kept as an artifact that the tag names
        assert "autotweak.config" not in run.data.tags
        assert run.data.tags["autotweak.config_artifact"] == "config.json"
        assert mlflow_client.download_artifacts(run_id, "config.json", str(home))
    assert run.data.params["x"] == str(trial.config["x"])
    assert run.data.params["notes.n0"] == "x" * 1000
    assert len(run.data.params) == 1 + len(notes)


@pytest.mark.parametrize("close", ["mark_failed", "end_trial"])
def test_a_config_tag_that_is_not_json_still_lets_the_record_close(home, mlflow_client, close, caplog):
    """A tag cut by an older version: the record closes, without the params it cannot read."""
    from autotweak.tracking import MlflowTracker, TrialRecord

    tracker = MlflowTracker(f"sqlite:///{home / 'mlflow.db'}")
    experiment = tracker.experiment_id("cut")
    run_id = mlflow_client.create_run(
        experiment, tags={"autotweak.kind": "trial", "autotweak.config": '{"notes": "xxxx'}
    ).info.run_id
    if close == "mark_failed":
        tracker.mark_failed(run_id, "worker lost")
    else:
        record = TrialRecord(run_id, 0, "complete", "loss", 0.1, [(1, 0.1, 0)], duration=1.0)
        tracker.end_trial(record)
    run = mlflow_client.get_run(run_id)
    assert run.info.status == ("FAILED" if close == "mark_failed" else "FINISHED")
    assert run.data.params == {}
    warned = [r for r in caplog.records if r.name.startswith("autotweak") and run_id in r.getMessage()]
    assert warned and "JSONDecodeError" in warned[0].getMessage()
