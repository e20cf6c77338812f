"""An ask/tell ``Study`` the program drops unclosed: a ``ResourceWarning``, its connections released,
and the study closed in full as Python exits."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import warnings
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from optuna.trial import TrialState

import autotweak
from autotweak.engine._budget import _lock_engine
from autotweak.engine._study import ATTR
from autotweak.testing.services import Postgres
from tests.helpers import drop_studies, load, mlflow_runs
from tests.objectives import tcp_connections

UNCLOSED = "unclosed autotweak.Study 'cell'"


@pytest.fixture
def pg_url(pg: Postgres) -> Iterator[str]:
    url = pg.url("optuna")
    yield url
    drop_studies(pg, url)


def _cell(make_experiment, url: str, run: int) -> autotweak.Study:
    """A notebook cell run again: the study reopened, a trial told and one left running."""
    study = autotweak.Study(make_experiment(name="cell", storage=url, budget={"trials": 50}), resume=run > 0)
    trial = study.ask()
    assert trial is not None
    study.tell(trial, float(run))
    assert study.ask() is not None
    return study


@pytest.mark.timeout(240)
def test_a_study_made_again_under_the_same_name_releases_the_connections_of_the_one_it_replaces(
    home, make_experiment, pg, pg_url
):
    """Each unclosed study kept its 2 pool connections (and the process's ask lock) until Python exited."""
    gc.collect()
    _lock_engine(pg_url).dispose()
    before = tcp_connections(os.getpid(), pg.port)
    held, replaced = [], []
    study = None
    for run in range(4):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            study = _cell(make_experiment, pg_url, run)  # the one it replaces is freed here, no collector
        replaced.append([str(w.message) for w in caught if w.category is ResourceWarning])
        held.append(tcp_connections(os.getpid(), pg.port))
    assert study is not None
    assert replaced[0] == [] and all(len(said) == 1 for said in replaced[1:]), replaced
    assert replaced[1][0].startswith(UNCLOSED), replaced[1][0]
    assert "1 running trial(s)" in replaced[1][0] and "call close()" in replaced[1][0]
    assert held == held[:1] * 4, f"{before} connection(s) before, {held} with each cell's study open"
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL, "the open study still routes SIGTERM"
    summary = study.close()
    assert summary.counts["complete"] == 4
    assert tcp_connections(os.getpid(), pg.port) == before
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    _close_dropped_as_python_exits()  # here, with the database still up
    assert tcp_connections(os.getpid(), pg.port) == before, "the at-exit closes reconnect, then close"


def _close_dropped_as_python_exits() -> None:
    """Run the at-exit close of the studies this process dropped (atexit keeps them for it)."""
    dropped = [s for s in gc.get_objects() if isinstance(s, autotweak.Study) and s._dropped and not s._closed]
    assert dropped, "atexit keeps a dropped study, to close it"
    for study in dropped:
        study._at_exit()
        assert study._closed


def test_a_closed_study_dropped_warns_of_nothing(home, make_experiment):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with autotweak.Study(make_experiment(name="closed")) as study:
            trial = study.ask()
            assert trial is not None
            study.tell(trial, 1.0)
        gone = weakref.ref(study)
        del study, trial
        gc.collect()
    assert gone() is None, "a closed study is freed"
    assert [w for w in caught if w.category is ResourceWarning] == []


# Optuna keeps the error of its optional import of redis, traceback and all: the frames of the
# code that first imports it live on (a function's, with its study), so the script imports it first.
DROPPED_IN_A_FUNCTION = """
import autotweak, gc, optuna
def cell(name):
    study = autotweak.Study(dict(SPEC, name=name))
    study.tell(study.ask(), 1.0)
    study.ask()
cell("dropped")
gc.collect()
kept = autotweak.Study(dict(SPEC, name="kept"))  # referenced to the end: closed as Python exits
kept.ask()
print("ran to the end", flush=True)
"""


def test_a_dropped_study_and_one_closed_as_python_exits_leave_the_interpreter_quietly(home, make_experiment):
    """The finalizer of the one and the at-exit close of the other; no error as the interpreter ends."""
    spec = make_experiment(name="x").to_dict()
    script = f"SPEC = {spec!r}\n{DROPPED_IN_A_FUNCTION}"
    done = subprocess.run(
        [sys.executable, "-W", "always::ResourceWarning", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=home.parent,
        env={**os.environ, "PYTHONPATH": str(Path(autotweak.__file__).parents[1])},
    )
    assert done.returncode == 0 and "ran to the end" in done.stdout, done.stderr
    assert done.stderr.count("ResourceWarning: unclosed autotweak.Study 'dropped'") == 1, done.stderr
    assert "study 'kept' was not closed" in done.stderr and "1 running trial(s) queued again" in done.stderr
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr, done.stderr


def _run(script: str, home: Path, spec: dict[str, object]) -> subprocess.CompletedProcess[str]:
    """``script`` run by a Python of its own (warnings as Python shows them by default), to its exit."""
    return subprocess.run(
        [sys.executable, "-c", f"SPEC = {spec!r}\n{script}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=home.parent,
        env={**os.environ, "PYTHONPATH": str(Path(autotweak.__file__).parents[1])},
    )


FORGOT_CLOSE = """
import autotweak, gc, optuna
def search():
    study = autotweak.Study(SPEC)
    study.tell(study.ask(), 1.0)
    study.ask()  # running as the function returns, close() forgotten
search()
gc.collect()
print("ran to the end", flush=True)
"""


@pytest.mark.timeout(180)
def test_a_study_a_function_forgot_to_close_is_closed_in_full_as_python_exits(
    home, make_experiment, mlflow_client, pg_url
):
    """Dropped as the function returned, it left its MLflow run RUNNING and its trial to go stale."""
    experiment = make_experiment(name="forgot", storage=pg_url)
    done = _run(FORGOT_CLOSE, home, experiment.to_dict())
    assert done.returncode == 0 and "ran to the end" in done.stdout, done.stderr
    said = "study 'forgot' was not closed (use it in a with block, or call close()): closed as Python exits"
    assert said in done.stderr and "1 running trial(s) queued again" in done.stderr, done.stderr
    assert "the program had dropped it" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    study = load(experiment)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.WAITING]
    assert study.trials[1].user_attrs[ATTR.INTERRUPTED], "recorded as cut short, not lost"
    assert study.trials[2].system_attrs["fixed_params"] == study.trials[1].params, "queued with its config"
    runs = mlflow_runs(mlflow_client, "forgot")
    assert [run.info.status for run in runs.parents] == ["KILLED"], "the parent run was left RUNNING"
    assert runs.children[1].data.tags["autotweak.state"] == "interrupted"


NOTEBOOK = """
import autotweak, gc, optuna
def cell(run):
    study = autotweak.Study(SPEC, resume=run > 0)
    study.tell(study.ask(), float(run))
    if run < 2:
        study.ask()  # the older cells' studies leave a trial running
    return study
study = cell(0)
study = cell(1)
study = cell(2)  # cell 1's study is dropped here, after this one opened
gc.collect()
CLOSE
print("ran to the end", flush=True)
"""


@pytest.mark.timeout(180)
@pytest.mark.parametrize("close", [False, True], ids=["newest-unclosed", "newest-closed"])
def test_a_notebook_that_made_its_study_again_ends_with_the_newest_ones_status(
    home, make_experiment, mlflow_client, pg_url, close
):
    """The dropped ones are closed as Python exits (interrupted: KILLED); the newest one's status stays."""
    experiment = make_experiment(name="nb", storage=pg_url, budget={"trials": 50})
    script = NOTEBOOK.replace("CLOSE", "study.close()" if close else "")
    done = _run(script, home, experiment.to_dict())
    assert done.returncode == 0 and "ran to the end" in done.stdout, done.stderr
    assert done.stderr.count("the program had dropped it") == 2, done.stderr
    assert done.stderr.count("study 'nb' was not closed") == (2 if close else 3), done.stderr
    study = load(experiment)
    assert not [t for t in study.trials if t.state == TrialState.RUNNING], "nothing left running"
    assert len(study.get_trials(states=[TrialState.WAITING])) == 2, "each dropped one's trial queued again"
    runs = mlflow_runs(mlflow_client, "nb")
    assert [run.info.status for run in runs.parents] == ["FINISHED"], "the newest study's close, not theirs"
