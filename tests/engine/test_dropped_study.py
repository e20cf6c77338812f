"""An ask/tell ``Study`` the program drops unclosed: a ``ResourceWarning``, its connections released."""

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

import autotweak
from autotweak.engine._budget import _lock_engine
from autotweak.testing.services import Postgres
from tests.helpers import drop_studies
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
