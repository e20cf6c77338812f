"""The ask/tell API for people who own their loop."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from optuna.trial import TrialState

import autotweak
from autotweak.engine._study import ATTR
from autotweak.exceptions import AutotweakError
from tests.conftest import base_spec
from tests.helpers import load, mlflow_runs


def test_ask_tell_loop_until_the_budget_is_spent(home, make_experiment, mlflow_client):
    exp = make_experiment(
        name="loop",
        budget={"trials": 5},
        pruner={"name": "median", "args": {"n_startup_trials": 1, "n_warmup_steps": 0}},
        metric={"name": "loss", "direction": "minimize", "steps": 4},
    )
    told = []
    with autotweak.Study(exp) as study:
        while (trial := study.ask()) is not None:
            loss = (trial.config["x"] - 1.0) ** 2
            for step in range(1, 5):
                trial.report(loss + 4 - step, step)
                if trial.should_prune():
                    study.tell(trial, state="pruned")
                    told.append("pruned")
                    break
            else:
                study.tell(trial, loss)
                told.append("complete")
    trials = load(exp).trials
    assert len(trials) == 5 == len(told)
    assert [t.state.name.lower() for t in trials] == [
        {"complete": "complete", "pruned": "pruned"}[s] for s in told
    ]
    runs = mlflow_runs(mlflow_client, "loop")
    assert sorted(runs.children) == [0, 1, 2, 3, 4]
    assert runs.parents[0].info.status == "FINISHED"


def test_non_finite_value_makes_a_failed_trial(home, make_experiment):
    exp = make_experiment(name="nan", budget={"trials": 1})
    with autotweak.Study(exp) as study:
        trial = study.ask()
        assert trial is not None
        study.tell(trial, float("nan"))
    assert load(exp).trials[0].state == TrialState.FAIL


def test_telling_twice_or_a_bad_state_is_refused(home, make_experiment):
    exp = make_experiment(name="twice", budget={"trials": 2})
    with autotweak.Study(exp) as study:
        trial = study.ask()
        assert trial is not None
        with pytest.raises(
            AutotweakError, match="'state' of tell\\(\\) must be one of complete, pruned, failed, got 'done'"
        ):
            study.tell(trial, 1.0, state="done")
        study.tell(trial, 1.0)
        with pytest.raises(AutotweakError, match="not open in this study"):
            study.tell(trial, 1.0)


def test_open_trials_are_failed_on_close(home, make_experiment):
    exp = make_experiment(name="open", budget={"trials": 2})
    study = autotweak.Study(exp)
    assert study.ask() is not None
    summary = study.close()
    assert summary.counts["failed"] == 1
    assert load(exp).trials[0].user_attrs["autotweak.failure"] == "still open when the study was closed"


def test_report_rejects_bad_steps(home, make_experiment):
    exp = make_experiment(name="steps", budget={"trials": 1})
    with autotweak.Study(exp) as study:
        trial = study.ask()
        assert trial is not None
        trial.report(0.5, 1)
        with pytest.raises(AutotweakError, match="'step' of report\\(\\) must increase"):
            trial.report(0.4, 1)
        with pytest.raises(
            AutotweakError, match="'step' of report\\(\\) must be an integer >= 0, got step=-1"
        ):
            trial.report(0.4, -1)
        study.tell(trial, 0.5)


def test_in_memory_storage_for_replays(home, make_experiment):
    exp = make_experiment(name="mem", storage="memory", budget={"trials": 4})
    with autotweak.Study(exp, track=False) as study:
        while (trial := study.ask()) is not None:
            study.tell(trial, trial.config["x"] ** 2)
        assert study.summary.counts["complete"] == 4
    assert not (home / "optuna.db").exists()
    with pytest.raises(AutotweakError, match="storage='memory' works with the ask/tell Study API only"):
        autotweak.optimize(exp)


def test_ask_tell_needs_no_objective_but_optimize_says_it_does(home):
    from autotweak.spec import Budget, Experiment, Metric

    exp = Experiment(
        name="no-objective",
        space=autotweak.SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0}}),
        metric=Metric("loss", "minimize"),
        budget=Budget(trials=2),
    )
    with autotweak.Study(exp, track=False) as study:
        while (trial := study.ask()) is not None:
            study.tell(trial, trial.config["x"])
    with pytest.raises(autotweak.SpecError, match="'objective' must be set to run trials with optimize"):
        autotweak.optimize(exp.with_overrides(name="other"))


def test_a_mapping_without_an_objective_opens_an_ask_tell_study(home):
    """The dict form, as the README shows it for the ask/tell loop, needs no objective either."""
    spec = {k: v for k, v in base_spec(name="mapping").items() if k != "objective"}
    with autotweak.Study(spec, track=False) as study:
        while (trial := study.ask()) is not None:
            study.tell(trial, trial.config["x"] ** 2)
    with pytest.raises(autotweak.SpecError, match="'objective' is required but missing"):
        autotweak.optimize(spec)


def test_a_trial_failed_as_stale_meanwhile_stays_failed(home, make_experiment, mlflow_client):
    """Another worker's sweep failed the trial while it ran: telling it complete fails it."""
    exp = make_experiment(name="swept", budget={"trials": 1})
    with autotweak.Study(exp) as study:
        trial = study.ask()
        assert trial is not None
        storage = study.optuna_study._storage
        storage.set_trial_state_values(trial.optuna_trial._trial_id, state=TrialState.FAIL)
        study.tell(trial, 1.0)
    (told,) = load(exp).trials
    assert told.state == TrialState.FAIL
    (run,) = mlflow_runs(mlflow_client, "swept").children.values()
    assert run.info.status == "FAILED"
    assert run.data.tags["autotweak.state"] == "failed"
    assert "declared stale" in run.data.tags["autotweak.failure"]


def test_an_exception_in_the_with_block_is_kept_on_the_open_trials(home, make_experiment, mlflow_client):
    exp = make_experiment(name="raised", budget={"trials": 3})
    with pytest.raises(ValueError, match="my training loop crashed"), autotweak.Study(exp) as study:
        trial = study.ask()
        assert trial is not None
        trial.report(0.1, step=1)
        raise ValueError("my training loop crashed")
    (failed,) = load(exp).trials
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs["autotweak.failure"] == "ValueError: my training loop crashed"
    assert study.summary.interrupted
    runs = mlflow_runs(mlflow_client, "raised")
    assert runs.parents[0].info.status == "KILLED"
    run_id = runs.children[0].info.run_id
    text = Path(mlflow_client.download_artifacts(run_id, "traceback.txt")).read_text()
    assert "Traceback" in text and 'raise ValueError("my training loop crashed")' in text


def test_ctrl_c_in_the_with_block_records_the_trials_as_interrupted(home, make_experiment, mlflow_client):
    """As under optimize: the open trial is interrupted (not failed), queued again, counted once.

    The ``with`` block raises ``StudyInterrupted``, which says so and how to resume; it was a
    bare ``KeyboardInterrupt``, which said nothing of the queued trial.
    """
    exp = make_experiment(name="ctrl-c", budget={"trials": 2})
    with pytest.raises(autotweak.StudyInterrupted) as stopped, autotweak.Study(exp) as study:
        trial = study.ask()
        assert trial is not None
        study.tell(trial, 0.1)
        trial = study.ask()
        assert trial is not None
        trial.report(0.2, step=1)
        config = trial.config
        raise KeyboardInterrupt
    assert str(stopped.value) == (
        "study 'ctrl-c' interrupted: 1 running trial(s) queued again; autotweak.Study(..., resume=True) "
        "continues it"
    )
    result = stopped.value.result
    assert result.summary is study.summary and result.trials_run == 2 and result.best_value == 0.1
    assert result.stop_reasons == ["interrupted"] and result.trials_counted == 2
    _, halted, queued = load(exp).trials
    assert halted.state == TrialState.FAIL
    assert halted.user_attrs["autotweak.failure"] == "interrupted (Ctrl-C or SIGTERM); queued to run again"
    assert halted.user_attrs["autotweak.interrupted"] is True
    assert queued.state == TrialState.WAITING and queued.user_attrs["autotweak.retry_of"] == 1
    assert study.summary.interrupted and study.summary.counts["interrupted"] == 1
    assert study.summary.counts["failed"] == 0
    runs = mlflow_runs(mlflow_client, "ctrl-c")
    assert runs.parents[0].info.status == "KILLED"
    assert runs.children[1].data.tags["autotweak.state"] == "interrupted"
    with autotweak.Study(exp, resume=True) as again:
        retry = again.ask()
        assert retry is not None and retry.config == config
        again.tell(retry, 0.3)
        assert again.ask() is None  # the interrupted trial is not counted twice against budget.trials
    assert [t.state for t in load(exp).trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]


def test_tell_refuses_text_and_bools_and_the_trial_stays_open(home, make_experiment):
    exp = make_experiment(name="text", budget={"trials": 1})
    with autotweak.Study(exp) as study:
        trial = study.ask()
        assert trial is not None
        for bad in ("0.9", True, np.bool_(False)):
            with pytest.raises(AutotweakError, match=r"'value' of tell\(\) must be a number .*got value="):
                study.tell(trial, bad)  # type: ignore[arg-type]
        study.tell(trial, np.float32(0.25))
    (told,) = load(exp).trials
    assert told.state == TrialState.COMPLETE and told.value == 0.25


def test_report_takes_numpy_integer_steps_but_not_bools(home, make_experiment):
    exp = make_experiment(name="np-steps", budget={"trials": 1})
    with autotweak.Study(exp) as study:
        trial = study.ask()
        assert trial is not None
        for step in np.arange(1, 4):
            trial.report(0.5, step=step)
        with pytest.raises(AutotweakError, match=r"must be an integer >= 0, got step=True"):
            trial.report(0.4, step=True)
        study.tell(trial, 0.5)
    assert load(exp).trials[0].intermediate_values == {1: 0.5, 2: 0.5, 3: 0.5}
    assert trial.last_step == 3 and type(trial.last_step) is int


def test_a_record_that_fails_as_the_study_closes_leaves_nothing_else_open(
    home, make_experiment, mlflow_client, monkeypatch
):
    """Ctrl-C while the tracker fails for one trial: the other trials and the study still close."""
    exp = make_experiment(name="closing", budget={"trials": 4})
    with pytest.raises(KeyboardInterrupt), autotweak.Study(exp) as study:
        first, second = study.ask(), study.ask()
        assert first is not None and second is not None
        real = study._session.record

        def record(handle, outcome, duration):
            if handle is first:
                raise RuntimeError("tracking server gone")
            return real(handle, outcome, duration)

        monkeypatch.setattr(study._session, "record", record)
        raise KeyboardInterrupt
    trials = load(exp).trials
    assert not [t for t in trials if t.state == TrialState.RUNNING], "both were told to Optuna"
    assert [t.user_attrs.get(ATTR.RETRY_OF) for t in trials if t.state == TrialState.WAITING] == [
        second.number
    ]
    (parent,) = mlflow_runs(mlflow_client, "closing").parents
    assert parent.info.status == "KILLED", "the study's record was closed"


def test_flush_closes_the_runs_told_so_far_and_says_which_it_could_not(
    home, make_experiment, mlflow_client, monkeypatch, caplog
):
    """A record that fails to close is warned about at flush and closed from Optuna's by close()."""
    exp = make_experiment(name="flushed", budget={"trials": 4})
    with autotweak.Study(exp) as study:
        first = study.ask()
        assert first is not None
        study.tell(first, 0.5)
        study.flush()
        assert mlflow_runs(mlflow_client, "flushed").children[0].info.status == "FINISHED"
        real = study._session.record

        def record(handle, outcome, duration):  # the store locked: the write gives up
            raise RuntimeError("database is locked")

        monkeypatch.setattr(study._session, "record", record)
        second = study.ask()
        assert second is not None
        with caplog.at_level(logging.WARNING, logger="autotweak"):
            study.tell(second, 0.25)
            study.flush()
        assert mlflow_runs(mlflow_client, "flushed").children[1].info.status == "RUNNING"
        assert "could not write the record of trial 1" in caplog.text
        monkeypatch.setattr(study._session, "record", real)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="autotweak"):
            study.close()
    assert "closed 1 trial record(s) left open after their trials finished in Optuna" in caplog.text
    assert mlflow_runs(mlflow_client, "flushed").children[1].info.status == "FINISHED"


def _tracker_down(self: object, run_id: str, folder: Path) -> None:
    raise ConnectionError("tracking server unreachable")


def _ctrl_c_after_a_checkpoint(exp: Any) -> None:
    """Ctrl-C in the with block, once the open trial has written a checkpoint."""
    with pytest.raises(KeyboardInterrupt), autotweak.Study(exp) as study:
        trial = study.ask()
        assert trial is not None
        (trial.checkpoint_dir / "step.txt").write_text("3")
        raise KeyboardInterrupt


def test_a_checkpoint_that_cannot_be_kept_does_not_lose_the_interrupted_trial(
    home, make_experiment, monkeypatch, caplog
):
    """The tracker is down when Ctrl-C comes: the trial is queued again all the same, without it."""
    from autotweak.tracking import MlflowTracker

    monkeypatch.setattr(MlflowTracker, "upload_checkpoint", _tracker_down)
    exp = make_experiment(name="kept", budget={"trials": 1})
    _ctrl_c_after_a_checkpoint(exp)
    stopped, queued = load(exp).trials
    assert stopped.state == TrialState.FAIL and queued.state == TrialState.WAITING
    assert queued.user_attrs["autotweak.retry_of"] == 0
    assert "autotweak.checkpoint_run" not in queued.user_attrs, "no run holds its checkpoint"
    assert "could not keep its checkpoint in run" in caplog.text and "ConnectionError" in caplog.text


def test_a_retry_of_a_retry_keeps_the_run_that_holds_the_checkpoint() -> None:
    import optuna

    from autotweak.engine._retries import requeue

    study = optuna.create_study()
    first = study.ask({"x": optuna.distributions.FloatDistribution(-5.0, 5.0)})
    study.tell(first, state=TrialState.FAIL)
    assert requeue(study, first.number, dict(first.params), {}, max_retries=3, checkpoint_run="R1")
    second = study.ask()
    study.tell(second, state=TrialState.FAIL)
    # the stale sweep passes the attempt's own attrs on, and no run of its own
    assert requeue(study, second.number, dict(second.params), second.user_attrs, max_retries=3)
    third = study.get_trials(states=(TrialState.WAITING,))[0]
    assert third.user_attrs[ATTR.ATTEMPT] == 3 and third.user_attrs[ATTR.CHECKPOINT_RUN] == "R1"


def test_a_checkpoint_that_cannot_be_fetched_starts_the_retry_from_scratch(
    home, make_experiment, monkeypatch, caplog
):
    """The tracker is down when the retry starts: it runs from step 0 instead of crashing the loop."""
    import shutil

    from autotweak.tracking import MlflowTracker

    exp = make_experiment(name="fetched", budget={"trials": 1})
    _ctrl_c_after_a_checkpoint(exp)
    (queued,) = [t for t in load(exp).trials if t.state == TrialState.WAITING]
    assert queued.user_attrs[ATTR.CHECKPOINT_RUN], "the checkpoint was kept in the first attempt's run"

    monkeypatch.setattr(MlflowTracker, "download_checkpoint", _tracker_down)
    shutil.rmtree(home / "checkpoints")  # the retry runs on another machine
    with autotweak.Study(exp, resume=True) as study:
        retry = study.ask()
        assert retry is not None and retry.number == queued.number
        assert not (retry.checkpoint_dir / "step.txt").exists(), "it starts from scratch"
        study.tell(retry, 1.0)
    assert load(exp).trials[queued.number].state == TrialState.COMPLETE
    assert "could not fetch its checkpoint from run" in caplog.text and "ConnectionError" in caplog.text


def test_an_interrupted_grid_point_is_asked_for_again_on_resume(home, make_experiment):
    """Optuna's grid counts the interrupted attempt as visited: ask() still hands out its retry."""
    exp = make_experiment(
        name="grid-asked",
        sampler={"name": "grid", "args": {"n_points": 3}},
        budget={"trials": 10},
        baseline=False,
    )
    with pytest.raises(KeyboardInterrupt), autotweak.Study(exp) as study:
        for _ in range(2):
            trial = study.ask()
            assert trial is not None
            study.tell(trial, 1.0)
        assert study.ask() is not None
        raise KeyboardInterrupt  # during the last of the 3 grid points
    with autotweak.Study(exp, resume=True) as study:
        retry = study.ask()
        assert retry is not None, "the queued retry of the interrupted grid point runs"
        study.tell(retry, 1.0)
        assert study.ask() is None, "then the grid is exhausted"
    complete = [t for t in load(exp).trials if t.state == TrialState.COMPLETE]
    assert sorted(t.params["x"] for t in complete) == [-5.0, 0.0, 5.0]


def test_a_study_whose_trials_all_failed_is_warned_about_as_it_closes(home, make_experiment, caplog):
    """As optimize warns: a loop whose every trial failed closed in silence, with best_value None."""
    exp = make_experiment(name="broken", budget={"trials": 3})
    with caplog.at_level(logging.WARNING, logger="autotweak"), autotweak.Study(exp) as study:
        while (trial := study.ask()) is not None:
            study.tell(trial, float("nan"))
    assert study.summary.best_value is None
    said = [r.getMessage() for r in caplog.records if "no trial completed" in r.getMessage()]
    assert said == [
        "study 'broken': no trial completed, 3 failed; the first, trial 0, failed with: the trial was told a "
        "value of nan, not a finite number. Fix the training loop, then resume the study: "
        "autotweak.Study(..., resume=True)"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        autotweak.Study(exp, resume=True).close()  # asked for nothing: nothing to say
    assert not [r for r in caplog.records if "no trial completed" in r.getMessage()]


def test_a_loop_whose_first_trials_all_fail_stops_as_an_optimize_worker_does(home, make_experiment, caplog):
    """A broken training loop ran the whole budget, 30 failures of the same error."""
    exp = make_experiment(name="broken", budget={"trials": 30})
    with caplog.at_level(logging.WARNING, logger="autotweak"), autotweak.Study(exp, track=False) as study:
        while (trial := study.ask()) is not None:
            study.tell(trial, state="failed", error="FileNotFoundError: data/train.csv")
    assert study.summary.counts["failed"] == 5 and len(load(exp).trials) == 5
    said = [r.getMessage() for r in caplog.records if "no trial completed" in r.getMessage()]
    assert said == [
        "study 'broken': no trial completed, 5 failed (ask() returned None once the first 5 trials it gave "
        "had failed, not to spend the budget on one error); the first, trial 0, failed with: "
        "FileNotFoundError: data/train.csv. Fix the training loop, then resume the study: "
        "autotweak.Study(..., resume=True)"
    ]
    with autotweak.Study(exp, resume=True, track=False) as again:  # fixed: the resume runs on
        while (trial := again.ask()) is not None:
            again.tell(trial, 1.0)
    assert again.summary.counts["complete"] == 25


def test_a_loop_that_completed_a_trial_is_not_stopped_by_failures(home, make_experiment):
    exp = make_experiment(name="flaky", budget={"trials": 8})
    with autotweak.Study(exp, track=False) as study:
        while (trial := study.ask()) is not None:
            if trial.number == 0:
                study.tell(trial, 1.0)
            else:
                study.tell(trial, float("nan"))
    assert study.summary.counts == {**study.summary.counts, "complete": 1, "failed": 7}


def test_close_while_a_ctrl_c_is_handled_closes_the_study_as_the_with_block_does(home, make_experiment):
    exp = make_experiment(name="caught", budget={"trials": 3})
    study = autotweak.Study(exp, track=False)
    trial = study.ask()
    assert trial is not None
    with pytest.raises(autotweak.StudyInterrupted, match="1 running trial"):
        try:
            raise KeyboardInterrupt  # Ctrl-C in the training loop
        except KeyboardInterrupt:
            study.close()
    states = [t.state for t in load(exp).trials]
    assert states == [TrialState.FAIL, TrialState.WAITING], "the interrupted trial is queued again"
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:  # a with block inside a handler closes as it would anywhere else
        with autotweak.Study(exp, resume=True, track=False) as again:
            while (trial := again.ask()) is not None:
                again.tell(trial, 1.0)
    assert again.summary.counts["complete"] == 3 and not again.summary.interrupted


def test_a_resumed_loop_stopped_by_failures_says_so_though_the_study_has_results(
    home, make_experiment, caplog
):
    """Trials of the study had completed, so no 'no trial completed' warning: ask() stopped in silence."""
    exp = make_experiment(name="resumed", budget={"trials": 30})
    with autotweak.Study(exp, track=False) as study:
        trial = study.ask()
        assert trial is not None
        study.tell(trial, 1.0)
    caplog.clear()
    with (
        caplog.at_level(logging.WARNING, logger="autotweak"),
        autotweak.Study(exp, resume=True, track=False) as again,
    ):
        while (trial := again.ask()) is not None:
            again.tell(trial, float("nan"))
        assert again.ask() is None
    assert again.summary.counts == {**again.summary.counts, "complete": 1, "failed": 5}
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "study 'resumed': ask() takes no new trial: the first 5 trials it gave in this Study failed (none "
        "completed). Fix the training loop, then resume the study: autotweak.Study(..., resume=True)"
    ]
