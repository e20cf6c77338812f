"""Bringing the records and the retries in line with Optuna's trials, when a study opens and closes."""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import optuna
import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

import autotweak
import autotweak.tracking._mlflow
from autotweak.engine._outage import note_outage, outage_of
from autotweak.engine._reconcile import UNRECORDED, lost_trial_start, reconcile
from autotweak.engine._retries import requeue
from autotweak.engine._study import ATTR
from autotweak.spec import Experiment
from autotweak.tracking import RECONCILED_TAG, MlflowTracker, TrialRecord, TrialStart
from tests.helpers import load, mlflow_runs

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
    assert any("trial 0" in m and "bad@name" in m and "not tried again" in m for m in warned), warned
    trial_id = str(study.optuna_study.trials[0]._trial_id)
    refused = _refused(exp)
    assert list(refused) == [trial_id] and "bad@name" in refused[trial_id]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        autotweak.Study(exp, resume=True).close()  # its opening and its close reconcile again
    assert not [r.getMessage() for r in caplog.records if "trial 0" in r.getMessage()], "said once"


def test_a_record_the_tracker_could_not_take_now_is_written_at_the_next_close(
    home, make_experiment, mlflow_client, monkeypatch, caplog
):
    exp = make_experiment(name="away")
    study = autotweak.Study(exp)
    trial = study.optuna_study.ask({"x": FloatDistribution(-5.0, 5.0)})
    study.optuna_study.tell(trial, 0.2)  # told to Optuna only: the study's end records it
    real = MlflowTracker.start_trial

    def away(self: MlflowTracker, start: Any) -> str:
        raise MlflowException("API request failed: connection refused", error_code=TEMPORARILY_UNAVAILABLE)

    monkeypatch.setattr(MlflowTracker, "start_trial", away)
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        study.close()
    assert any("trial 0" in m and "tried again later" in m for m in caplog.messages), caplog.messages
    monkeypatch.setattr(MlflowTracker, "start_trial", real)
    autotweak.Study(exp, resume=True).close()
    assert mlflow_runs(mlflow_client, "away").children[0].info.status == "FINISHED"
    assert not _refused(exp)


def test_a_record_written_from_optuna_names_the_session_that_ran_the_trial(
    home, make_experiment, mlflow_client
):
    exp = make_experiment(name="rebuilt")
    study = autotweak.Study(exp)
    trial = study.optuna_study.ask({"x": FloatDistribution(-5.0, 5.0)})
    trial.set_user_attr(ATTR.SESSION, "0123456789ab")  # its worker's session; then it died before its record
    study.optuna_study.tell(trial, 0.2)
    study.close()
    assert mlflow_runs(mlflow_client, "rebuilt").children[0].data.tags[ATTR.SESSION] == "0123456789ab"


def test_a_record_written_from_optuna_holds_the_config_the_trial_ran_with(
    home, make_experiment, mlflow_client
):
    """Its base config and fixed tweaks too, as its worker would have written them (tracker down)."""
    exp = make_experiment(
        name="rebuilt",
        base={"x": 0.0, "optim": {"name": "adamw"}},
        tweaks={"x": {"type": "float", "low": -5.0, "high": 5.0}, "width": 8},
    )
    study = autotweak.Study(exp)
    trial = study.optuna_study.ask({"x": FloatDistribution(-5.0, 5.0)})
    study.optuna_study.tell(trial, 0.2)  # its worker died before its record
    study.close()
    params = mlflow_runs(mlflow_client, "rebuilt").children[0].data.params
    assert params == {"x": str(trial.params["x"]), "optim.name": "adamw", "width": "8"}


def _refused(exp: Experiment) -> dict[str, str]:
    """The study's note of the trials whose records the tracker refused, and why."""
    study = load(exp)
    return dict(study._storage.get_study_system_attrs(study._study_id).get(UNRECORDED) or {})


def _ours(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The records of autotweak's loggers (not urllib3's retries of an earlier test's server, long gone)."""
    return [r for r in caplog.records if r.name.split(".")[0] == "autotweak"]


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
        assert not _ours(caplog)
        assert reconcile(optuna_study, tracker, "loss", 5) == 1, "its worker is gone: closed from Optuna's"
    assert [r.getMessage() for r in _ours(caplog)] == [
        "closed 1 trial record(s) left open after their trials finished in Optuna (a worker stopped "
        "before closing them, or a write failed), from Optuna's trials"
    ]
    assert mlflow_runs(mlflow_client, "left-open").children[trial.number].info.status == "FINISHED"
    tracker.close()
    study.close()


def test_records_an_outage_of_the_tracker_left_are_written_as_its_own_and_the_study_owes_none_after(
    home, make_experiment, mlflow_client, caplog
):
    """A study that kept an outage of its tracking server blames no crashed worker for what it missed."""
    exp = make_experiment(name="outage")
    study = autotweak.Study(exp)
    optuna_study = study.optuna_study
    left_open, missing = (optuna_study.ask({"x": FloatDistribution(-5.0, 5.0)}) for _ in range(2))
    tracker = MlflowTracker(f"sqlite:///{home / 'mlflow.db'}")
    tracker.start_trial(lost_trial_start(optuna_study, optuna_study.trials[left_open.number]))
    for trial in (left_open, missing):  # their records' closing, and the other's opening, were dropped
        optuna_study.tell(trial, 0.5)
    note_outage(
        optuna_study, "tracking URI http://127.0.0.1:1: no MLflow server answers (connection refused)"
    )
    with caplog.at_level(logging.INFO, logger="autotweak"):
        assert reconcile(optuna_study, tracker, "loss", 5) == 2
    said = [r for r in caplog.records if r.name.startswith("autotweak")]
    assert [r.levelno for r in said] == [logging.INFO]
    assert (
        said[0]
        .getMessage()
        .startswith("wrote the trial records MLflow missed while its tracking server did not answer (since ")
    )
    assert said[0].getMessage().endswith("from Optuna's trials: 1 left open closed, 1 missing opened")
    assert outage_of(optuna_study) is None
    runs = mlflow_runs(mlflow_client, "outage")
    assert {r.info.status for r in runs.children.values()} == {"FINISHED"} and len(runs.children) == 2
    tracker.close()
    study.close()


def _stopped(study: optuna.Study, x: float, *, ago: timedelta = timedelta(hours=1), **attrs: Any) -> int:
    """Add a trial told FAIL ``ago`` with ``attrs`` and no retry, as a worker killed before it queued it."""
    when = datetime.now() - ago
    study.add_trial(
        FrozenTrial(
            number=0,  # numbered by the storage
            state=TrialState.FAIL,
            value=None,
            datetime_start=when,
            datetime_complete=when,
            params={"x": x},
            distributions={"x": FloatDistribution(-5.0, 5.0)},
            user_attrs=attrs,
            system_attrs={},
            intermediate_values={},
            trial_id=0,
        )
    )
    return study.trials[-1].number


def test_a_trial_stopped_before_its_worker_queued_it_again_is_queued_on_resume(home, make_experiment, caplog):
    exp = make_experiment(
        name="unqueued", execution={"workers": 1, "heartbeat_interval": 1, "grace_period": 60}
    )
    autotweak.Study(exp).close()
    study = load(exp)
    stopped = {
        "interrupted": _stopped(  # always queued again, from the checkpoint of the attempt before
            study, 1.0, **{ATTR.INTERRUPTED: True, ATTR.ATTEMPT: 3, ATTR.CHECKPOINT_RUN: "run-of-attempt-2"}
        ),
        "preempted": _stopped(study, 2.0, **{ATTR.PREEMPTED: True}),
        "out of retries": _stopped(study, 3.0, **{ATTR.PREEMPTED: True, ATTR.ATTEMPT: 3}),
        "queued by its worker": _stopped(study, 4.0, **{ATTR.PREEMPTED: True}),
        "failed": _stopped(study, 0.5, **{ATTR.FAILURE: "ValueError: boom"}),
        "crashed, to run again": _stopped(  # its worker died; whoever failed it did not queue it
            study, -1.0, **{ATTR.FAILURE: "its worker process crashed: exit code 3", ATTR.RUNS_AGAIN: True}
        ),
        "crashed": _stopped(study, -2.0, **{ATTR.FAILURE: "its worker process crashed: exit code 3"}),
        "within the grace period": _stopped(study, 4.5, ago=timedelta(seconds=1), **{ATTR.PREEMPTED: True}),
    }
    requeue(study, stopped["queued by its worker"], {"x": 4.0}, {}, max_retries=2)

    def retries() -> dict[str, int]:
        counts = Counter(t.user_attrs.get(ATTR.RETRY_OF) for t in load(exp).trials)
        return {kind: counts[number] for kind, number in stopped.items()}

    expected = dict.fromkeys(stopped, 0) | {
        "interrupted": 1,
        "preempted": 1,
        "queued by its worker": 1,
        "crashed, to run again": 1,
    }
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        autotweak.Study(exp, resume=True).close()
    assert retries() == expected
    numbers = ", ".join(f"trial {stopped[k]}" for k in ("interrupted", "preempted", "crashed, to run again"))
    assert (
        f"queued 3 interrupted, preempted or crashed trial(s) to run again, which were stopped before "
        f"their retry was queued: {numbers}" in caplog.messages
    )
    retry = next(t for t in load(exp).trials if t.user_attrs.get(ATTR.RETRY_OF) == stopped["interrupted"])
    assert retry.state == TrialState.WAITING and retry.system_attrs["fixed_params"] == {"x": 1.0}
    assert retry.user_attrs[ATTR.ATTEMPT] == 4 and retry.user_attrs[ATTR.CHECKPOINT_RUN] == "run-of-attempt-2"
    autotweak.Study(exp, resume=True).close()
    assert retries() == expected, "queued once"


def test_a_lost_retry_resumes_from_the_checkpoint_its_killed_worker_kept_in_the_trials_own_record(
    home, make_experiment
):
    """Killed after keeping the checkpoint, before queueing the retry: the retry still finds it."""
    exp = make_experiment(name="kept", execution={"workers": 1, "heartbeat_interval": 1, "grace_period": 60})
    autotweak.Study(exp).close()
    study = load(exp)
    earlier = {ATTR.PREEMPTED: True, ATTR.ATTEMPT: 2, ATTR.CHECKPOINT_RUN: "run-of-attempt-1"}
    kept, cut = _stopped(study, 1.0, **earlier), _stopped(study, 2.0, **earlier)
    folder = home / "checkpoint"
    folder.mkdir()
    (folder / "step.txt").write_text("3")
    tracker = MlflowTracker(f"sqlite:///{home / 'mlflow.db'}")
    runs = {n: tracker.start_trial(lost_trial_start(study, study.trials[n])) for n in (kept, cut)}
    tracker.upload_checkpoint(runs[kept], folder)
    tracker.client.log_artifacts(runs[cut], str(folder), "checkpoint")  # killed before it said it was whole
    tracker.close()
    autotweak.Study(exp, resume=True).close()
    retries = {t.user_attrs.get(ATTR.RETRY_OF): t for t in load(exp).trials}
    assert retries[kept].user_attrs[ATTR.CHECKPOINT_RUN] == runs[kept], "the checkpoint its worker kept"
    assert retries[cut].user_attrs[ATTR.CHECKPOINT_RUN] == "run-of-attempt-1", "not half a checkpoint"


def test_a_curve_flush_that_lands_after_the_catch_up_leaves_one_point_per_step(tmp_path, mlflow_template):
    """A worker's flush waits out MLflow's retries in its process; the study's close writes the curve first.

    The close cannot see a write under way in another process: it writes the steps from
    Optuna's trial. Stamped otherwise than the flush's, each step had two points in the
    run's history (the MLflow UI's curve and table) once the flush landed.
    """
    from autotweak.engine._trial import Trial
    from autotweak.tracking import TrialStart

    study = optuna.create_study(study_name="flush", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")  # migrated once per session
    worker = MlflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    trial = study.ask()
    start = TrialStart("flush", None, 0, trial._trial_id, {}, {}, 1, None, None, {})
    run_id = worker.start_trial(start)
    under_way: list[tuple[int, float, int]] = []  # sent, not landed: the server is away
    handle = Trial(trial, {}, checkpoint_dir=tmp_path / "ckpt", flush=under_way.extend, flush_every=0.0)
    for step in (1, 2, 3):
        handle.report(1.0 / step, step)
    study.tell(trial, 1 / 3)  # its close is dropped: the server does not answer
    assert reconcile(study, MlflowTracker(worker.tracking_uri), "loss", None) == 1  # the study's close
    worker.log_steps(run_id, "loss", under_way)  # the flush lands
    history = worker.client.get_metric_history(run_id, "loss")
    assert sorted(m.step for m in history) == [1, 2, 3]


def test_a_trial_close_that_lands_after_the_catch_up_leaves_one_point_per_step(
    home, make_experiment, mlflow_client, monkeypatch
):
    """A trial's close (its points after the last flush) waits out MLflow's retries; a catch-up lands first.

    The catch-up, in another process, cannot see the close under way: it writes the steps
    from Optuna's trial, stamped with the trial's end where the close stamped them as
    reported, and each step had two points in the run's history once the close landed.
    """
    exp = make_experiment(name="close-late", metric={"name": "loss", "direction": "minimize", "steps": 3})
    study = autotweak.Study(exp)
    trial = study.ask()
    assert trial is not None
    for step in (1, 2, 3):  # within a flush's 15 s: the close sends them all
        trial.report(1.0 / step, step)
    under_way: list[TrialRecord] = []  # sent, not landed: the server is away
    landed = MlflowTracker.end_trial
    monkeypatch.setattr(MlflowTracker, "end_trial", lambda self, record: under_way.append(record))
    study.tell(trial, 1 / 3)
    monkeypatch.setattr(MlflowTracker, "end_trial", landed)
    [record] = under_way
    uri = f"sqlite:///{home / 'mlflow.db'}"
    assert reconcile(study.optuna_study, MlflowTracker(uri), "loss", None) == 1  # a catch-up elsewhere
    monkeypatch.setattr(autotweak.tracking._mlflow, "_LATE_S", 0.0)  # it waited out MLflow's retries
    study._prepared.tracker.end_trial(record)  # the close lands, from the worker that opened the record
    history = mlflow_client.get_metric_history(record.run_id, "loss")
    assert sorted(m.step for m in history) == [1, 2, 3]
    tags = mlflow_client.get_run(record.run_id).data.tags
    assert RECONCILED_TAG not in tags, "the worker's own close reached the record after all"
    study.close()


def _pruned_then_interrupted(exp: Experiment) -> None:
    """Trial 0 (the base config) pruned, with its pruner's notes; trial 1 stopped by Ctrl-C after a report."""
    with pytest.raises(KeyboardInterrupt), autotweak.Study(exp) as study:
        first = study.ask()
        assert first is not None
        first.report(0.9, 1)
        first.report(0.7, 2)
        first.set_user_attr("autotweak.pruner.rule", "MedianPruner")
        first.set_user_attr("autotweak.pruner.step", 2)
        study.tell(first, state="pruned")
        second = study.ask()
        assert second is not None
        second.report(0.4, 1)
        raise KeyboardInterrupt


@pytest.mark.parametrize("lost", ["closes", "openings"])
def test_a_record_written_from_optuna_says_what_its_workers_close_would_have(
    home, make_experiment, mlflow_client, monkeypatch, lost
):
    """A pruned trial's notes and base-config mark, an interrupted one's last report, the spec's tags.

    Each study runs the same trials; the second's workers' closes (and openings) never land
    (their tracker went away), so its records are written from Optuna's trials at its close.
    """

    def run(name: str) -> dict[int, Any]:
        _pruned_then_interrupted(make_experiment(name=name, tags={"team": "vision"}))
        return mlflow_runs(mlflow_client, name).children

    closed_by_workers = run("closed")
    landed = MlflowTracker.end_trial

    def dropped(self: MlflowTracker, record: TrialRecord) -> None:
        if RECONCILED_TAG in record.extra_tags:  # the catch-up's own close lands
            landed(self, record)

    monkeypatch.setattr(MlflowTracker, "end_trial", dropped)
    if lost == "openings":
        opens = MlflowTracker.start_trial

        def away(self: MlflowTracker, start: TrialStart) -> str:
            if RECONCILED_TAG in start.tags:
                return opens(self, start)
            raise MlflowException(
                "API request failed: connection refused", error_code=TEMPORARILY_UNAVAILABLE
            )

        monkeypatch.setattr(MlflowTracker, "start_trial", away)
    caught_up = run(f"lost-{lost}")
    for number in (0, 1):
        ours, theirs = closed_by_workers[number].data, caught_up[number].data
        assert theirs.tags["autotweak.reconciled"] == "true"
        assert {k: v for k, v in theirs.metrics.items() if k != "duration_s"} == {
            k: v for k, v in ours.metrics.items() if k != "duration_s"
        }, number
        shared = (
            "autotweak.state",
            "autotweak.baseline",
            "autotweak.pruner.rule",
            "autotweak.pruner.step",
            "team",
        )
        assert {k: theirs.tags.get(k) for k in shared} == {k: ours.tags.get(k) for k in shared}, number
    assert caught_up[1].data.metrics["final_loss"] == 0.4, "an interrupted trial's last report"
