"""SIGTERM to a script running a study closes it as Ctrl-C does, unless the script handles SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from optuna.trial import TrialState

import autotweak
from autotweak.engine._study import ATTR
from tests.conftest import base_spec, objective
from tests.engine.test_workers import wait_for_lines
from tests.helpers import load, mlflow_runs

ROOT = Path(__file__).resolve().parents[2]

OPTIMIZE = """
import autotweak, sys
if __name__ == "__main__":
    try:
        autotweak.optimize("exp.yaml")
    except autotweak.StudyInterrupted as stopped:
        print("interrupted:", stopped.result.summary.counts["interrupted"])
        raise SystemExit(130)
"""

LOOP = """
while (trial := study.ask()) is not None:
    with open(trial.config["marker"], "a") as marks:
        marks.write(f"{trial.number} started\\n")
    for step in range(1, 51):
        time.sleep(0.2)
        trial.report(float(step), step)
    study.tell(trial, 1.0)
"""
# An ask/tell loop in a with block (the README's), in a try whose finally closes the study, or
# with no cleanup at all.
OPENED = 'import time, autotweak\nstudy = autotweak.Study("exp.yaml")\n'
TRY_FINALLY = f"{OPENED}try:{textwrap.indent(LOOP, '    ')}finally:\n    study.close()\n"
NO_CLOSE = OPENED + LOOP
ASK_TELL = (
    f"import time, autotweak\nwith autotweak.Study('exp.yaml') as study:{textwrap.indent(LOOP, '    ')}"
)


def _from_a_terminal() -> None:
    """SIGHUP at its default, as in a script run from a terminal, though the tests run under nohup."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def _start(home: Path, code: str, workers: int, started: str | None = "marks.txt") -> subprocess.Popen[str]:
    """``code`` run as a script in ``home`` on a study of slow trials, once ``workers`` trials started.

    Or once ``workers`` lines are in the file ``started`` names, which the script writes; or,
    ``started`` ``None``, once its workers' fork server is loading.
    """
    marker = home / "marks.txt"
    spec = base_spec(
        objective=objective("checkpointed"),
        base={"marker": str(marker), "sleep": 0.2, "steps": 50, "x": 0.5},
        metric={"name": "loss", "direction": "minimize", "steps": 50},
        budget={"trials": 3},
        execution={"workers": workers, "heartbeat_interval": 1, "grace_period": 3},
    )
    (home / "exp.yaml").write_text(yaml.safe_dump(spec))
    (home / "script.py").write_text(code)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "script.py"],
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=_from_a_terminal,
    )
    if started is None:
        _fork_server_loading(proc.pid)
    else:
        wait_for_lines(home / started, workers)
    return proc


def _assert_closed_as_interrupted(mlflow_client, interrupted: list[int]) -> None:
    study = load(autotweak.Experiment.from_dict(base_spec()))
    assert not [t for t in study.trials if t.state == TrialState.RUNNING], "nothing left running"
    stopped = [t for t in study.trials if t.state == TrialState.FAIL]
    assert [t.number for t in stopped] == interrupted
    assert all(t.user_attrs[ATTR.INTERRUPTED] for t in stopped), "recorded as on Ctrl-C, not lost"
    runs = mlflow_runs(mlflow_client, "study")
    assert runs.parents[0].info.status == "KILLED", "the parent run was left RUNNING"
    assert [runs.children[n].data.tags["autotweak.state"] for n in interrupted] == ["interrupted"] * len(
        interrupted
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_to_a_script_running_optimize_closes_the_study_as_ctrl_c_does(home, mlflow_client, workers):
    proc = _start(home, OPTIMIZE, workers)
    os.kill(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert f"interrupted: {workers}" in out, out
    _assert_closed_as_interrupted(mlflow_client, list(range(workers)))


SLOW_IMPORT = (
    """
import os, time
if __name__ == "__mp_main__":  # a worker process imports the script again: torch, say, takes seconds
    with open("imports.txt", "a") as marks:
        marks.write(f"{os.getpid()}\\n")
    time.sleep(60)
"""
    + OPTIMIZE
)


def test_a_ctrl_c_while_the_workers_import_the_script_interrupts_the_study(home, mlflow_client):
    """It raised WorkerCrashError ('every worker ... failed ... exited with code 1 before it started'),
    blaming a missing `__main__` guard that the script has."""
    proc = _start(home, SLOW_IMPORT, 2, started="imports.txt")
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: to every process of the group
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted: 0" in out, out
    assert "worker failed" not in out and "Traceback" not in out, out
    study = load(autotweak.Experiment.from_dict(base_spec()))
    assert [t.state for t in study.trials] == [TrialState.WAITING], "the baseline, still queued"
    assert mlflow_runs(mlflow_client, "study").parents[0].info.status == "KILLED"


def _fork_server_loading(pid: int, timeout: float = 60) -> None:
    """Wait until ``pid``'s fork server runs the preload (SQLAlchemy's extensions in), still importing."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for child in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                parent = int((child / "stat").read_text().rsplit(")", 1)[1].split()[1])
                server = parent == pid and b"forkserver" in (child / "cmdline").read_bytes()
                if server and "sqlalchemy" in (child / "maps").read_text():
                    return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} started no fork server in {timeout}s")


def test_a_ctrl_c_while_the_fork_server_loads_prints_no_traceback(home, mlflow_client):
    """It printed 40 lines of KeyboardInterrupt traceback from inside MLflow's import."""
    proc = _start(home, OPTIMIZE, 2, started=None)
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: the fork server is in the group
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted: 0" in out, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_script_that_lets_study_interrupted_through_exits_1(home, mlflow_client, stop):
    """As the README says: Python gives 130 only to a bare KeyboardInterrupt, not to a subclass."""
    proc = _start(home, 'import autotweak\nautotweak.optimize("exp.yaml")\n', 1)
    os.kill(proc.pid, stop)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "autotweak.exceptions.StudyInterrupted: study 'study'" in out, out
    _assert_closed_as_interrupted(mlflow_client, [0])


STUDY_INTERRUPTED = (
    "autotweak.exceptions.StudyInterrupted: study 'study' interrupted: 1 running trial(s) queued again; "
    "autotweak.Study(..., resume=True) continues it"
)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_to_a_script_in_an_ask_tell_study_closes_it_as_ctrl_c_does(home, mlflow_client, stop):
    """SIGHUP too: the terminal the script ran in was closed (it died, its trial left RUNNING)."""
    code, out = _stopped(home, ASK_TELL, stop)
    assert code == 1 and STUDY_INTERRUPTED in out, out  # as optimize's script ends (README)
    _assert_closed_as_interrupted(mlflow_client, [0])


def _stopped(home: Path, code: str, stop: int) -> tuple[int, str]:
    """The exit status and output of ``code`` sent ``stop`` once its first trial runs."""
    proc = _start(home, code, 1)
    os.kill(proc.pid, stop)
    out, _ = proc.communicate(timeout=60)
    return proc.returncode, out


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_in_a_loop_whose_finally_closes_the_study_raises_study_interrupted(home, mlflow_client, stop):
    """close() failed the running trial as 'still open' and let a bare KeyboardInterrupt through."""
    code, out = _stopped(home, TRY_FINALLY, stop)
    assert code == 1 and STUDY_INTERRUPTED in out, out
    _assert_closed_as_interrupted(mlflow_client, [0])


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_study_the_script_never_closes_is_closed_as_python_exits(home, mlflow_client, stop):
    """Its running trial stayed RUNNING (SIGTERM: the process died at once), and so did its MLflow runs."""
    code, out = _stopped(home, NO_CLOSE, stop)
    said = (
        "study 'study' was not closed (use it in a with block, or call close()): closed as Python exits, "
        "1 running trial(s) queued again; autotweak.Study(..., resume=True) continues it"
    )
    assert code == -signal.SIGINT and said in out, out  # Python's exit on a KeyboardInterrupt
    _assert_closed_as_interrupted(mlflow_client, [0])


def _seen_by(seen: list[object]) -> object:
    def train(config: dict[str, object]) -> float:
        seen.append(signal.getsignal(signal.SIGTERM))
        return 1.0

    return train


def test_the_sigterm_handler_is_put_back_and_a_scripts_own_is_left_alone(home, make_experiment):
    seen: list[object] = []
    exp = make_experiment(objective=_seen_by(seen), budget={"trials": 1})
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    autotweak.optimize(exp)
    assert seen[-1] is not signal.SIG_DFL, "SIGTERM is routed while the study runs"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, "and put back afterwards"

    def mine(signum: int, frame: object) -> None:
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        autotweak.optimize(make_experiment(name="own", objective=_seen_by(seen), budget={"trials": 1}))
        with autotweak.Study(make_experiment(name="asked", budget={"trials": 1})) as study:
            seen.append(signal.getsignal(signal.SIGTERM))
            trial = study.ask()
            assert trial is not None
            study.tell(trial, 1.0)
        assert seen[-2:] == [mine, mine] and signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_sighup_is_routed_while_a_study_runs_unless_ignored_as_under_nohup(home, make_experiment):
    seen: list[object] = []

    def train(config: dict[str, object]) -> float:
        seen.append(signal.getsignal(signal.SIGHUP))
        return 1.0

    previous = signal.signal(
        signal.SIGHUP, signal.SIG_DFL
    )  # a script run from a terminal (pytest may be nohup's)
    try:
        autotweak.optimize(make_experiment(objective=train, budget={"trials": 1}))
        assert seen[-1] not in (signal.SIG_DFL, signal.SIG_IGN), "SIGHUP is routed while the study runs"
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL, "and put back afterwards"
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # nohup python script.py
        autotweak.optimize(make_experiment(name="nohup", objective=train, budget={"trials": 1}))
        assert seen[-1] is signal.SIG_IGN and signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)
