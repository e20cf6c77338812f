"""Ctrl-C handling: it interrupts the objective once, and never a store write."""

from __future__ import annotations

import subprocess
import sys

import pytest

from autotweak.engine._loop import _Interrupts


def test_first_ctrl_c_interrupts_the_objective_a_second_does_not_cut_the_recording():
    interrupts = _Interrupts()
    interrupts.enter_objective()
    with pytest.raises(KeyboardInterrupt):
        interrupts.handler(2, None)
    interrupts.handler(2, None)  # arrives while the interrupted trial is being recorded
    assert interrupts.stop_requested


def test_ctrl_c_outside_the_objective_only_asks_to_stop():
    interrupts = _Interrupts()
    interrupts.handler(2, None)
    assert interrupts.stop_requested


def test_ctrl_c_during_a_store_write_is_held_until_the_write_is_done():
    interrupts = _Interrupts()
    interrupts.enter_objective()
    with pytest.raises(KeyboardInterrupt), interrupts.critical():
        interrupts.handler(2, None)  # held: no exception inside the write
        assert interrupts.pending
    assert interrupts.raised and not interrupts.pending


# The README's script, with a Ctrl-C that lands while `autotweak.optimize` is still being
# imported (the import of Optuna and MLflow takes seconds on a busy machine): a finder raises
# it at the import of the module named, once, as the signal would.
_SCRIPT = """
import importlib.abc, sys

class CtrlC(importlib.abc.MetaPathFinder):
    fired = False
    def find_spec(self, name, path, target=None):
        if name == sys.argv[1] and not CtrlC.fired:
            CtrlC.fired = True
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, CtrlC())
import autotweak
try:
    try:
        result = autotweak.optimize("experiment.yaml")
    except autotweak.StudyInterrupted as stopped:
        print("caught", stopped)
except KeyboardInterrupt:
    print("KeyboardInterrupt")
"""


@pytest.mark.parametrize("cut_at", ["mlflow.entities.span", "pandas.io.xml", "optuna.study"])
def test_a_ctrl_c_while_optimize_is_imported_reaches_the_script_as_itself(tmp_path, cut_at):
    """``except autotweak.StudyInterrupted`` imports nothing: not the half-imported libraries again."""
    run = subprocess.run(
        [sys.executable, "-c", _SCRIPT, cut_at], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0 and run.stdout.strip() == "KeyboardInterrupt", run.stderr[-2000:]


def test_a_worker_whose_parent_stopped_while_it_started_exits_without_a_traceback():
    """SIGTERM to the parent alone (`docker stop`) while its workers start: the pipe is closed."""
    import multiprocessing as mp

    from autotweak.engine._processes import process_main

    receiver, sender = mp.Pipe(duplex=False)
    receiver.close()
    assert process_main(0, b"never read", sender, 0, {}, None) is None


def test_a_ctrl_c_while_the_study_is_being_created_leaves_no_study_to_block_a_rerun(
    home, make_experiment, monkeypatch
):
    """Cut after the study's row was made, spec not yet recorded: it blocked the rerun (already exists)."""
    import autotweak
    import autotweak.engine._study as made

    def ctrl_c(experiment: object) -> None:
        raise KeyboardInterrupt

    exp = make_experiment(budget={"trials": 1})
    with monkeypatch.context() as patched:
        patched.setattr(made, "components_meta", ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            autotweak.optimize(exp)
    assert autotweak.optimize(exp).summary.counts["complete"] == 1


def _ctrl_c(*args: object, **kwargs: object) -> None:
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    "cut_at",
    [
        "autotweak.engine._opening.catch_up",  # the parent run made, the trial records being read
        "autotweak.tracking._mlflow.close_stray_parents",  # the parent run being made
        "autotweak.engine._prepare.record_session",  # both made, the session being recorded
    ],
)
def test_a_ctrl_c_while_the_study_is_being_created_leaves_no_parent_run_in_mlflow(
    home, make_experiment, mlflow_client, monkeypatch, caplog, cut_at
):
    """The study was deleted, but its parent run stayed RUNNING: a phantom study in the MLflow UI."""
    import logging

    import autotweak
    from tests.helpers import mlflow_runs

    exp = make_experiment(budget={"trials": 1})
    with monkeypatch.context() as patched:
        patched.setattr(cut_at, _ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            autotweak.optimize(exp)
    assert mlflow_runs(mlflow_client, "study").parents == []
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        assert autotweak.optimize(exp).summary.counts["complete"] == 1
    assert [run.info.status for run in mlflow_runs(mlflow_client, "study").parents] == ["FINISHED"]
    assert not [r for r in caplog.records if "closed parent run" in r.getMessage()], "none was left to close"


_OPENS = {"optimize": 'autotweak.optimize("exp.yaml")', "Study": 'autotweak.Study("exp.yaml").close()'}


@pytest.mark.parametrize("signal", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("call", sorted(_OPENS))
def test_a_stop_that_lands_in_a_finalizer_as_a_script_opens_its_study_reaches_the_script(
    home, make_experiment, mlflow_client, signal, call
):
    """It printed "Exception ignored in ..." with a KeyboardInterrupt traceback, and the study ran anyway."""
    import os
    from pathlib import Path

    import yaml

    import autotweak
    from tests.conftest import base_spec
    from tests.helpers import STOP_IN_A_FINALIZER, mlflow_runs

    script = STOP_IN_A_FINALIZER.replace("{signal}", signal) + (
        f"import autotweak\ntry:\n    {_OPENS[call]}\nexcept KeyboardInterrupt as stopped:\n"
        "    raise SystemExit(f'stopped: {type(stopped).__name__}')\nprint('ran')\n"
    )
    Path("exp.yaml").write_text(yaml.safe_dump(base_spec(budget={"trials": 2})))
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and run.stderr.endswith("stopped: KeyboardInterrupt\n"), run.stderr
    assert "Exception ignored" not in run.stderr and "ran" not in run.stdout, run.stderr
    assert autotweak.optimize(make_experiment(budget={"trials": 2})).summary.counts["complete"] == 2
    assert len(mlflow_runs(mlflow_client, "study").parents) == 1, "no parent run of the cut study is left"


@pytest.mark.parametrize("cut_at", ["session_seed", "RecordWriter"])
def test_a_ctrl_c_while_an_ask_tell_study_loads_leaves_nothing_to_block_a_rerun(
    home, make_experiment, mlflow_client, monkeypatch, cut_at
):
    """The study and its RUNNING parent run were kept: the same autotweak.Study(...) said 'already exists'."""
    import autotweak
    from tests.helpers import mlflow_runs

    exp = make_experiment(budget={"trials": 1})
    with monkeypatch.context() as patched:
        patched.setattr(f"autotweak.engine._ask_tell.{cut_at}", _ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            autotweak.Study(exp)
    with autotweak.Study(exp) as study:
        trial = study.ask()
        assert trial is not None
        study.tell(trial, 1.0)
    assert [run.info.status for run in mlflow_runs(mlflow_client, "study").parents] == ["FINISHED"]
