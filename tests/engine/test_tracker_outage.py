"""A study whose MLflow tracking server goes away while it runs: it ends in seconds, and loses nothing.

MLflow's client retries a server that does not answer for about four minutes per call;
the study must not wait that out at each record still to write. The server here is real
(on loopback), killed with SIGKILL from inside a trial, as a crash does.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from mlflow import MlflowClient

import autotweak
import autotweak.engine._trial
import autotweak.engine._writer
from autotweak._locations import resolve_storage_url
from autotweak.engine._outage import outage_of
from autotweak.engine._reconcile import reconcile
from autotweak.engine._trial import TrialPreempted
from autotweak.testing.services import MlflowServer
from autotweak.tracking import MlflowTracker, TrialRecord, TrialStart
from tests.conftest import base_spec, objective
from tests.helpers import Gate, mlflow_runs

pytestmark = pytest.mark.timeout(150)  # the old code waited out MLflow's retries: 4 minutes per record

DOWN = "no MLflow server answers (connection refused)"
_OUTAGE: dict[str, Any] = {}  # what the objective does to the server, and when: set by each test


@pytest.fixture
def server(killable_mlflow: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> MlflowServer:
    _OUTAGE.clear()
    # a write stalled this long (5 s in use) has the writer ask the server: it finds the outage sooner
    monkeypatch.setattr(autotweak.engine._writer, "_STALLED_S", 1.0)
    return killable_mlflow


def _outage(config: dict[str, Any], trial: autotweak.Trial) -> float:
    """Scores the trial's number (trial 0 is best); kills the server at one trial and starts it at another."""
    trial.report(float(trial.number), 1)
    if trial.number < _OUTAGE.get("kill_at", -1):  # its model is kept while the server runs
        model = trial.checkpoint_dir / "model.txt"
        model.parent.mkdir(parents=True, exist_ok=True)
        model.write_text("a model")
        trial.log_model(model)
    if trial.number == _OUTAGE.get("kill_at"):
        _OUTAGE["server"].kill()
    if trial.number == _OUTAGE.get("stop_at"):  # on after the kill: its curve is written, then it stops
        trial.report(float(trial.number), 2)
        trial.report(float(trial.number), 3)
        if _OUTAGE["stop"] == "preempted":
            raise TrialPreempted(f"trial {trial.number}: the machine is going away")
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C
    if trial.number == _OUTAGE.get("start_at"):
        _OUTAGE["server"].start()
    return float(trial.number)


def _spec(name: str, uri: str, trials: int) -> dict[str, Any]:
    return base_spec(
        name=name,
        objective=_outage,
        tracking_uri=uri,
        budget={"trials": trials},
        metric={"name": "loss", "direction": "minimize", "steps": 1},
    )


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """autotweak's warnings (urllib3's of a write left retrying the dead server are not shown by the CLI)."""
    return [r for r in caplog.records if r.name.startswith("autotweak") and r.levelno >= logging.WARNING]


def _closed(client: MlflowClient, study: str, trials: int) -> None:
    """Every trial has one finished record, and the study's record is finished."""
    runs = mlflow_runs(client, study)
    assert sorted(runs.children) == list(range(trials)) and not runs.duplicates
    assert {run.info.status for run in runs.children.values()} == {"FINISHED"}
    assert [run.info.status for run in runs.parents] == ["FINISHED"]


@pytest.mark.parametrize(  # trial records written here, or by the helper process
    "helper", ["off", "on"]
)
def test_a_study_whose_server_dies_in_its_last_trial_ends_in_seconds_and_resume_writes_its_records(
    home, server, monkeypatch, caplog, helper
):
    monkeypatch.setenv("AUTOTWEAK_TRACKING_PROCESS", helper)
    _OUTAGE.update(server=server, kill_at=5)
    caplog.set_level(logging.WARNING, logger="autotweak")
    began = time.monotonic()
    result = autotweak.optimize(_spec("dies", server.url, trials=6))
    assert time.monotonic() - began < 60
    assert result.unrecorded is not None and f"tracking URI {server.url}: {DOWN}" in result.unrecorded
    assert result.registered_model is None and result.summary.counts["complete"] == 6
    [said] = [r.getMessage() for r in _warnings(caplog)]
    assert "closed without its MLflow records" in said and "`autotweak resume dies`" in said
    # trial 5's, the one the server died in (and trial 4's, if its close was still under way), counted
    lacking = re.search(
        r"Not in MLflow: (\d) trial record\(s\) of this run \(missing, or left open\), ", said
    )
    assert lacking and int(lacking[1]) in (1, 2), said
    assert "the study's summary and its best model's registration" in said
    assert not [r for r in caplog.records if r.exc_info], "no traceback: the server is down, and said so"
    study = optuna.load_study(study_name="dies", storage=resolve_storage_url(None))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 6

    server.start()
    resumed = autotweak.optimize(_spec("dies", server.url, trials=6), resume=True)
    assert resumed.unrecorded is None and resumed.registered_model == "dies/1"
    _closed(MlflowClient(server.url), "dies", 6)


def test_records_catch_up_when_the_server_comes_back_before_the_end_and_both_are_said_as_they_happen(
    home, server, caplog
):
    """A long study is told when its records stop being written, and when they are written again; once."""
    _OUTAGE.update(server=server, kill_at=1, start_at=4)
    caplog.set_level(logging.INFO, logger="autotweak")
    began = time.monotonic()
    result = autotweak.optimize(_spec("back", server.url, trials=6))
    assert time.monotonic() - began < 90
    assert result.unrecorded is None and result.registered_model == "back/1"
    _closed(MlflowClient(server.url), "back", 6)
    assert not [r for r in caplog.records if r.exc_info], "no traceback: the server was down, and said so"
    [down, back] = [r.getMessage() for r in _warnings(caplog)]  # not one per trial, nor the close's
    assert "trial records are not written to MLflow while its tracking server does not answer" in down
    assert f"tracking URI {server.url}: {DOWN}" in down and "`autotweak resume back`" in down
    assert f"tracking server {server.url} answers again; trial records are written again" in back
    caught_up = [
        r.getMessage() for r in caplog.records if "wrote the trial records MLflow missed" in r.getMessage()
    ]
    assert len(caught_up) == 1, "the close wrote them, as the outage's"
    study = optuna.load_study(study_name="back", storage=resolve_storage_url(None))
    assert outage_of(study) is None, "the close wrote what the outage missed: nothing is owed"


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``autotweak ARGS`` in the test's working directory."""
    command = [sys.executable, "-m", "autotweak", *args]
    return subprocess.run(command, cwd=home.parent, capture_output=True, text=True, timeout=140)


def _kill_at(
    home: Path, name: str, server: MlflowServer, *, kill_at: int, trials: int, linger: float = 0.0
) -> dict[str, Any]:
    """exp.yaml: a study whose trial ``kill_at`` kills the tracking server (SIGKILL).

    Each worker process's first trial after it takes ``linger`` seconds.
    """
    spec = base_spec(
        name=name,
        objective=objective("kill_tracking_server_at"),
        budget={"trials": trials},
        metric={"name": "loss", "direction": "minimize", "steps": 1},
    )
    spec["base"] = {"x": 0.0, "kill_at": kill_at, "pid": server.pid, "linger": linger}
    (home.parent / "exp.yaml").write_text(yaml.safe_dump(spec))
    return spec


@pytest.mark.slow  # about 45 s: the CLI run twice, its server killed in the first run
def test_the_cli_says_once_that_the_server_is_down_and_returns_in_seconds_and_resume_says_what_it_wrote(
    home, server
):
    """Said once as it happens, by whichever of two worker processes finds it first, and once at the close.

    "As it happens": while each process's next trial runs (8 s) after its records began
    waiting on the dead server; nothing waits for those writes, the writer asks after 5 s.
    The resume says what it wrote, and blames no crashed worker for the records left open.
    """
    _kill_at(home, "cli-dies", server, kill_at=2, trials=6, linger=8.0)
    began = time.monotonic()
    done = _cli(home, "optimize", "exp.yaml", "--tracking-uri", server.url, "--workers", "2")
    assert time.monotonic() - began < 90
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "urllib3" not in done.stderr
    assert f"tracking URI {server.url}: {DOWN}" in done.stderr
    assert done.stderr.count("are not written to MLflow while its tracking server does not answer") == 1
    assert done.stderr.count("closed without its MLflow records") == 1, done.stderr
    assert done.stderr.count("WARNING") == 2, done.stderr  # the notice, then the close's summary
    assert "registration" not in done.stderr, "no trial logged a model"
    assert done.stderr.count("`autotweak resume cli-dies`") == 2
    assert "every trial is in MLflow" not in done.stdout + done.stderr
    lacking = re.search(
        r"Not in MLflow: (\d+) trial record\(s\) of this run \(missing, or left open\)", done.stderr
    )
    assert lacking and int(lacking[1]) >= 1, done.stderr  # trial 2's, at least: the server was killed in it

    server.start()
    records = mlflow_runs(MlflowClient(server.url), "cli-dies").children.values()
    assert int(lacking[1]) == 6 - sum(run.info.status == "FINISHED" for run in records), "the count is right"
    resumed = _cli(home, "resume", "cli-dies", "--tracking-uri", server.url)
    assert resumed.returncode == 0, resumed.stderr
    assert "--trials" not in resumed.stdout + resumed.stderr, "no trial to run is what was asked for"
    assert "crashed" not in resumed.stderr and "WARNING" not in resumed.stderr, resumed.stderr
    written = re.search(r"no trial left to run; wrote (\d+) trial record\(s\) to MLflow", resumed.stdout)
    assert written, resumed.stdout
    assert int(written[1]) >= 1  # trial 2's, at least: the server was killed in it
    _closed(MlflowClient(server.url), "cli-dies", 6)


def test_a_joined_worker_says_when_the_server_dies_and_as_it_ends_what_it_could_not_write(home, server):
    """`autotweak worker` has no close to say it: it says it as it happens, and counts them at its end.

    "As it happens" is when a write keeps the worker waiting: its fourth unwritten record
    (the writer holds three), so the worker runs four more records after the kill (trial 1's
    close, trial 2's opening and close, trial 3's opening) before its end. With fewer, it
    may end before any write has waited, and says it only then, once.
    """
    spec = _kill_at(home, "joined-dies", server, kill_at=1, trials=5)
    autotweak.Study({**spec, "tracking_uri": server.url}).close()  # made by its launcher; no trial ran
    joined = _cli(home, "worker", "joined-dies", "--tracking-uri", server.url)
    assert joined.returncode == 0, joined.stderr
    assert "worker done: 5 trial(s) run" in joined.stdout
    warnings = [line for line in joined.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 2, joined.stderr
    assert "trial records are not written to MLflow while its tracking server does not answer" in warnings[0]
    ended = re.search(
        r"study 'joined-dies': (\d+) trial record\(s\) of this worker are not in MLflow", warnings[1]
    )
    assert ended and int(ended[1]) >= 2, warnings[1]  # trial 2's, and trial 1's unless it closed first
    assert (
        f"tracking URI {server.url}: {DOWN}" in warnings[1]
        and "`autotweak resume joined-dies`" in warnings[1]
    )
    server.start()
    records = mlflow_runs(MlflowClient(server.url), "joined-dies").children.values()
    assert int(ended[1]) == 5 - sum(run.info.status == "FINISHED" for run in records), "the count is right"


@pytest.mark.parametrize("stop", ["preempted", "interrupted"])
def test_a_trial_that_runs_on_after_the_server_dies_reports_and_stops_in_seconds(
    home, server, monkeypatch, caplog, stop
):
    """Its curve's flushes and its record as it stops (a spot machine going away, Ctrl-C) ask the server once.

    Each waited out MLflow's four minutes of retries; resuming writes the record, curve and all.
    """
    monkeypatch.setattr(autotweak.engine._trial, "FLUSH_EVERY_S", 0.0)  # each report writes the curve
    _OUTAGE.update(server=server, kill_at=3, stop_at=3, stop=stop)
    caplog.set_level(logging.WARNING, logger="autotweak")
    if stop == "interrupted":
        with pytest.raises(autotweak.StudyInterrupted) as raised:
            autotweak.optimize(_spec("stops", server.url, trials=6))
        result = raised.value.result
    else:
        result = autotweak.optimize(_spec("stops", server.url, trials=6))
    assert result.unrecorded is not None and result.summary.counts[stop] == 1
    [down, said] = _warnings(caplog)  # not one per flush, nor per trial
    assert "trial records are not written to MLflow" in down.getMessage() and not down.exc_info
    assert "closed without its MLflow records" in said.getMessage() and not said.exc_info
    study = optuna.load_study(study_name="stops", storage=resolve_storage_url(None))
    assert [t.user_attrs.get("autotweak.retry_of") for t in study.trials][4] == 3  # queued again

    server.start()
    resumed = autotweak.optimize(_spec("stops", server.url, trials=6), resume=True)
    assert resumed.unrecorded is None and resumed.summary.counts["complete"] == 6
    client = MlflowClient(server.url)
    runs = mlflow_runs(client, "stops")
    assert sorted(runs.children) == list(range(7)) and not runs.duplicates
    stopped = runs.children[3]
    assert stopped.data.tags["autotweak.state"] == stop
    # step 3 was written by the resume; a flush left retrying lands as the same point, or not at all
    assert sorted(m.step for m in client.get_metric_history(stopped.info.run_id, "loss")) == [1, 2, 3]


def test_a_write_under_way_when_the_server_died_and_the_catch_up_leave_each_step_once(server):
    """A curve flush under way when the server died lands once it is back: after a resume wrote the curve.

    The resume's catch-up (a tracker that did not open the record, as reconcile's) writes the
    steps the run lacks from Optuna's, stamped with the trial's end: MLflow kept both points
    of step 2, the flush's and the catch-up's ([1, 2, 2, 3]).
    """
    gate = Gate(server.port)
    live = MlflowTracker(gate.url)
    start = TrialStart("late", None, 0, 0, {}, {}, attempt=1, retry_of=None, seed=None, provenance={})
    run_id = live.start_trial(start)
    live.log_steps(run_id, "loss", [(1, 1.0, 1_000)])
    server.kill()
    gate.open.clear()
    late = threading.Thread(target=live.log_steps, args=(run_id, "loss", [(2, 2.0, 2_000)]), daemon=True)
    late.start()
    assert gate.holding.wait(60), "the flush is under way"
    server.start()
    curve = [(1, 1.0, 9_000), (2, 2.0, 9_000), (3, 3.0, 9_000)]  # Optuna's, stamped with the trial's end
    MlflowTracker(server.url).end_trial(TrialRecord(run_id, 0, "complete", "loss", 3.0, curve, duration=1.0))
    gate.open.set()
    late.join(timeout=120)
    assert not late.is_alive()
    history = MlflowClient(server.url).get_metric_history(run_id, "loss")
    assert sorted(m.step for m in history) == [1, 2, 3]


def test_a_record_opening_under_way_when_the_server_died_is_not_opened_again_by_the_catch_up(server):
    """The trial's record would be two runs: the catch-up's, and the opening that landed once it was back."""
    study = optuna.create_study(study_name="late-open")
    trial = study.ask()
    study.tell(trial, 0.5)  # its worker's record is not written yet
    gate = Gate(server.port)
    live = MlflowTracker(gate.url)
    live.experiment_id("late-open")
    server.kill()
    gate.open.clear()
    start = TrialStart("late-open", None, 0, trial._trial_id, {}, {}, 1, None, None, {})
    late = threading.Thread(target=live.start_trial, args=(start,), daemon=True)
    late.start()
    assert gate.holding.wait(60), "the opening is under way"
    server.start()
    assert reconcile(study, MlflowTracker(server.url), "loss", None) == 0, "its opening may land yet"
    gate.open.set()
    late.join(timeout=120)
    assert not late.is_alive()
    runs = mlflow_runs(MlflowClient(server.url), "late-open")
    assert sorted(runs.children) == [0] and not runs.duplicates


def test_an_ask_tell_study_closed_while_its_server_is_down_counts_the_records_mlflow_lacks(
    home, server, caplog
):
    """Trial 1's record: opened before the server died, its close not written (left open)."""
    caplog.set_level(logging.WARNING, logger="autotweak")
    study = autotweak.Study(_spec("ask-dies", server.url, trials=2))
    first = study.ask()
    assert first is not None
    study.tell(first, 0.0)
    second = study.ask()
    assert second is not None
    study.flush()  # both records are open, the first closed
    server.kill()
    study.tell(second, 1.0)
    study.close()
    [said] = [
        r.getMessage() for r in _warnings(caplog) if "closed without its MLflow records" in r.getMessage()
    ]
    assert (
        "Not in MLflow: 1 trial record(s) of this run (missing, or left open) and the study's summary" in said
    )
