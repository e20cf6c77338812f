"""A trial record's opening left retrying a tracking server that died, landing after the catch-up.

The catch-up (a study's close, a resume) writes the records MLflow missed from Optuna's
trials once the server answers again. An opening still waiting out MLflow's retries then
lands after it: the record must end as its trial did, in MLflow's terms (FINISHED,
FAILED, KILLED), not RUNNING until the study is next opened or closed.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import time

import optuna
import pytest
from mlflow import MlflowClient

import autotweak
from autotweak.engine._late import LATE_S, open_record
from autotweak.engine._reconcile import UNRECORDED, reconcile
from autotweak.testing.services import MlflowServer
from autotweak.tracking import MlflowTracker, TrialRecord, TrialStart
from tests.conftest import base_spec
from tests.helpers import Gate, mlflow_runs

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
def server(killable_mlflow: MlflowServer) -> MlflowServer:
    return killable_mlflow


def test_an_opening_that_lands_after_a_resumes_catch_up_ends_its_record_as_its_trial_did(home, server):
    """A study closed while its server was down, resumed in the same process once it is back.

    Trial 0's opening waits at the gate through both; the resume's catch-up leaves its
    record to it (a second would be a duplicate). Landing, it closes the record from
    Optuna's trial: FINISHED, with its value, not a trial RUNNING in the MLflow UI.
    """
    gate = Gate(server.port)
    spec = base_spec(name="late", tracking_uri=gate.url, budget={"trials": 1})
    study = autotweak.Study(spec)
    server.kill()
    gate.open.clear()
    trial = study.ask()
    assert trial is not None and gate.holding.wait(60), "the opening is under way"
    gate.passing.set()  # the server refuses the others: the close finds it down
    study.tell(trial, 0.5)
    study.close()
    server.start()
    resumed = autotweak.Study(spec, resume=True)  # its catch-up: trial 0's opening may land yet
    gate.open.set()
    study._writer._thread.join(120)  # the opening lands
    client = MlflowClient(server.url)
    runs = mlflow_runs(client, "late")
    assert sorted(runs.children) == [0] and not runs.duplicates
    record = runs.children[0]
    assert record.info.status == "FINISHED"
    assert record.data.metrics["final_loss"] == 0.5
    resumed.close()


_WORKER = """
import sys, time
import optuna
from autotweak.engine._late import open_record
from autotweak.tracking import MlflowTracker, TrialStart

url, storage, trial_id = sys.argv[1], sys.argv[2], int(sys.argv[3])
study = optuna.load_study(study_name="cross", storage=storage)
start = TrialStart("cross", None, 0, trial_id, {}, {}, 1, None, None, {})
print(open_record(study, MlflowTracker(url), start, since=time.monotonic(), metric="loss", steps=None))
"""


def test_an_opening_in_another_process_that_lands_after_the_catch_up_leaves_one_record(tmp_path, server):
    """A joined worker's opening, retrying the dead server, lands after the study's close wrote the record.

    The close's catch-up cannot see a write under way in another process: it opens the
    trial's record from Optuna's trial. The worker's opening, landing then, was a second
    run of the trial, RUNNING for ever (nothing closes a record of a trial that has one).
    """
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="cross", storage=storage)
    trial = study.ask()
    study.tell(trial, 0.5)  # its worker's close was dropped: the server was down
    MlflowTracker(server.url).experiment_id("cross")
    gate = Gate(server.port)
    server.kill()
    gate.open.clear()
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER, gate.url, storage, str(trial._trial_id)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert gate.holding.wait(60), "the worker's opening is under way"
        held = time.monotonic()
        server.start()
        assert reconcile(study, MlflowTracker(server.url), "loss", None) == 1  # the close's catch-up
        # it lands late (LATE_S), as one that waited out retries does; the old slow server start made it so
        time.sleep(max(0.0, held + LATE_S - time.monotonic()))
        gate.open.set()
        out, _ = worker.communicate(timeout=120)
    finally:
        worker.kill()
    runs = mlflow_runs(MlflowClient(server.url), "cross")
    assert sorted(runs.children) == [0] and not runs.duplicates
    assert runs.children[0].info.status == "FINISHED"
    assert out.strip() == runs.children[0].info.run_id, "the worker writes on to the trial's one record"


def test_the_trials_own_close_after_a_late_opening_closed_its_record_drops_the_reconciled_tag(
    tmp_path, mlflow_template
):
    """The late opening closes the record from Optuna's trial; the worker's own close lands next.

    The record then holds the trial's own close (its tags, its traceback): the tag saying it
    was written from Optuna's trial alone would say what is no longer so.
    """
    study = optuna.create_study(study_name="own", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    trial = study.ask()
    trial.report(0.7, 1)
    trial.report(0.5, 2)
    study.tell(trial, 0.5)
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")  # migrated once per session
    tracker = MlflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    start = TrialStart("own", None, 0, trial._trial_id, {"x": 1}, {}, 1, None, None, {})
    run_id = open_record(study, tracker, start, since=time.monotonic() - 2 * LATE_S, metric="loss", steps=2)
    client = MlflowClient(tracker.tracking_uri)
    assert client.get_run(run_id).data.tags["autotweak.reconciled"] == "true"  # closed from Optuna's
    steps = [(1, 0.7, 1_000), (2, 0.5, 2_000)]
    own = TrialRecord(
        run_id, 0, "complete", "loss", 0.5, steps, 1.0, extra_tags={"autotweak.baseline": "true"}
    )
    tracker.end_trial(own)  # the worker's close, queued behind the opening
    run = client.get_run(run_id)
    assert "autotweak.reconciled" not in run.data.tags
    assert run.data.tags["autotweak.baseline"] == "true" and run.info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(run_id, "loss")) == [1, 2]


class _LandsAfterTheRead(MlflowTracker):
    """A catch-up's tracker, with the worker's late opening landing just after it read the records."""

    def __init__(self, uri: str, study: optuna.Study, start: object) -> None:
        super().__init__(uri)
        self.land = lambda: open_record(
            study, MlflowTracker(uri), start, since=time.monotonic() - 2 * LATE_S, metric="loss", steps=None
        )
        self.landed: list[str] = []

    def recorded_trials(self, study_name: str) -> set[int]:
        recorded = super().recorded_trials(study_name)
        self.landed.append(self.land())  # it looks for another record now: there is none yet
        return recorded


def test_a_late_opening_that_lands_between_a_catch_ups_read_and_its_opening_leaves_one_record(
    tmp_path, mlflow_template
):
    """The catch-up read the records before the opening landed, and opens its own after the opening looked.

    Neither saw the other when it looked; the catch-up's opening was a second record of
    the trial, both closed, both listed in the MLflow UI.
    """
    study = optuna.create_study(study_name="window", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    trial = study.ask()
    trial.report(0.7, 1)
    study.tell(trial, 0.5)
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")  # migrated once per session
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    start = TrialStart(
        "window", None, 0, trial._trial_id, {"x": 1}, {}, 1, None, None, {"autotweak.host": "w"}
    )
    catch_up = _LandsAfterTheRead(uri, study, start)
    assert reconcile(study, catch_up, "loss", None) == 1
    runs = mlflow_runs(MlflowClient(uri), "window")
    assert sorted(runs.children) == [0] and not runs.duplicates
    record = runs.children[0]
    assert record.info.run_id == catch_up.landed[0], "its worker's opening is kept: it names its host"
    assert record.info.status == "FINISHED" and record.data.tags["autotweak.host"] == "w"
    assert [m.step for m in MlflowClient(uri).get_metric_history(record.info.run_id, "loss")] == [1]


class _LandsBeforeTheClose(_LandsAfterTheRead):
    """A catch-up's tracker, with the worker's late opening landing between its look and its close."""

    def recorded_trials(self, study_name: str) -> set[int]:
        return MlflowTracker.recorded_trials(self, study_name)

    def end_trial(self, record: TrialRecord) -> None:
        if not self.landed:
            self.landed.append(self.land())  # it sees the catch-up's record, and keeps its own
        super().end_trial(record)


def test_a_catch_up_whose_record_a_late_opening_deleted_leaves_the_trial_to_it_unwarned(
    tmp_path, mlflow_template, caplog
):
    """The catch-up looked before the opening landed; the opening, looking after, kept its own.

    Closing its deleted record, the catch-up is refused: the trial is not noted as one the
    tracker refuses, nor warned of, since its worker's record holds it, closed.
    """
    study = optuna.create_study(study_name="after", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    trial = study.ask()
    study.tell(trial, 0.5)
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")  # migrated once per session
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    start = TrialStart(
        "after", None, 0, trial._trial_id, {"x": 1}, {}, 1, None, None, {"autotweak.host": "w"}
    )
    catch_up = _LandsBeforeTheClose(uri, study, start)
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        assert reconcile(study, catch_up, "loss", None) == 1
    assert "could not write" not in caplog.text
    assert UNRECORDED not in study._storage.get_study_system_attrs(study._study_id)
    runs = mlflow_runs(MlflowClient(uri), "after")
    assert sorted(runs.children) == [0] and not runs.duplicates
    assert runs.children[0].info.run_id == catch_up.landed[0] and runs.children[0].info.status == "FINISHED"
