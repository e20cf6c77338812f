"""A trial record's opening left retrying a tracking server that died, landing after the catch-up.

The catch-up (a study's close, a resume) writes the records MLflow missed from Optuna's
trials once the server answers again. An opening still waiting out MLflow's retries then
lands after it: the record must end as its trial did, in MLflow's terms (FINISHED,
FAILED, KILLED), not RUNNING until the study is next opened or closed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

import autotweak
from autotweak.testing.services import MlflowServer
from tests.conftest import base_spec
from tests.helpers import Gate, mlflow_runs

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MlflowServer]:
    with MlflowServer(f"sqlite:///{tmp_path / 'served.db'}", tmp_path / "served") as served:
        yield served


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
