"""Several worker processes on one storage; workers killed, interrupted, resumed."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

import autotweak
from autotweak.engine._executors import WorkerCrashError
from autotweak.engine._loop import FAIL_FAST
from autotweak.engine._study import ATTR
from autotweak.engine._summary import summarize
from tests.conftest import base_spec, objective
from tests.helpers import load, mlflow_runs

STATUS = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "KILLED", TrialState.FAIL: "FAILED"}


def assert_stores_agree(client, study) -> None:
    """One child run per Optuna trial, with the matching state; one parent run."""
    runs = mlflow_runs(client, study.study_name)
    assert len(runs.parents) == 1
    assert not runs.duplicates
    finished = [t for t in study.trials if t.state.is_finished()]
    assert sorted(runs.children) == [t.number for t in finished]
    for t in finished:
        run = runs.children[t.number]
        queued_again = t.user_attrs.get(ATTR.INTERRUPTED) or t.user_attrs.get(ATTR.PREEMPTED)
        status = "KILLED" if queued_again else STATUS[t.state]  # run again, not failed
        assert run.info.status == status, (t.number, t.state, run.info.status)
        assert run.data.tags["autotweak.optuna_trial_id"] == str(t._trial_id)


def write_spec(path: Path, **overrides: Any) -> Path:
    path.write_text(yaml.safe_dump(base_spec(**overrides)))
    return path


def _as_in_a_terminal(background: bool) -> None:
    """The signals of a command a shell starts: SIGHUP at its default (the test runner's may be
    ignored, under nohup), and SIGINT ignored for a background job."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    if background:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def start_cli(args: list[str], cwd: Path, *, background: bool = False) -> subprocess.Popen[str]:
    """``autotweak ARGS`` in its own session; ``background``: SIGINT ignored, as ``cmd &`` in a script."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "autotweak", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: _as_in_a_terminal(background),
    )


@contextmanager
def running_cli(args: list[str], cwd: Path) -> Iterator[subprocess.Popen[str]]:
    """``start_cli(args, cwd)``, killed with its process group on the way out if it still runs.

    A test that fails while the CLI runs (an instance never came up, say) leaves no launcher behind.
    """
    proc = start_cli(args, cwd)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()


def ctrl_c(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    """Send the CLI Ctrl-C's SIGINT (to it alone, not its children); return its output once it ends."""
    os.kill(proc.pid, signal.SIGINT)
    return proc.communicate(timeout=timeout)[0]


def wait_for_lines(path: Path, n: int, timeout: float = 60) -> list[str]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists():
            lines = path.read_text().splitlines()
            if len(lines) >= n:
                return lines
        time.sleep(0.1)
    raise AssertionError(f"{path} did not get {n} lines in {timeout}s")


def test_four_worker_processes_lose_and_duplicate_nothing(home, make_experiment, mlflow_client):
    marker = home / "marks.txt"
    exp = make_experiment(
        objective=objective("marked"),
        base={"marker": str(marker), "sleep": 0.05},
        budget={"trials": 20},
        sampler="tpe",
        execution={"workers": 4, "heartbeat_interval": 1, "grace_period": 5},
    )
    result = autotweak.optimize(exp)
    study = load(exp)
    assert [t.number for t in study.trials] == list(range(20))
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    marks = [line.split() for line in marker.read_text().splitlines()]
    assert Counter(int(n) for n, _ in marks) == Counter(range(20)), "each trial ran exactly once"
    assert len({pid for _, pid in marks}) == 4, "all four workers took trials"
    assert result.summary.counts["complete"] == 20
    assert_stores_agree(mlflow_client, study)


def test_sigkilled_worker_trial_is_failed_retried_from_checkpoint(home, mlflow_client):
    marker = home / "marks.txt"
    spec = write_spec(
        home / "exp.yaml",
        objective=objective("checkpointed"),
        base={"marker": str(marker), "sleep": 0.4, "steps": 6},
        metric={"name": "loss", "direction": "minimize", "steps": 6},
        budget={"trials": 4},
        execution={"workers": 2, "heartbeat_interval": 1, "grace_period": 3},
    )
    proc = start_cli(["optimize", str(spec)], home.parent)
    lines = wait_for_lines(marker, 2)  # both workers run a trial
    # The second worker: its crash must be said as it happens, not once the first has ended.
    first = next(line.split() for line in lines if line.endswith(" autotweak-worker-1"))
    time.sleep(1.5)  # let the victim checkpoint a few steps
    os.kill(int(first[1]), signal.SIGKILL)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    study = load(autotweak.Experiment.from_dict(base_spec()))
    victim = study.trials[int(first[0])]
    assert victim.state == TrialState.FAIL
    retry = [t for t in study.trials if t.user_attrs.get(ATTR.RETRY_OF) == victim.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].params == victim.params
    resumed = [line for line in marker.read_text().splitlines() if line.startswith(f"{retry[0].number} ")]
    assert resumed and resumed[0].split()[2] != "start=0", "the retry resumed from the checkpoint"
    counted = [t for t in study.trials if ATTR.RETRY_OF not in t.user_attrs]
    assert len(counted) == 4
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 4
    assert_stores_agree(mlflow_client, study)
    run = mlflow_runs(mlflow_client, "study").children[victim.number]
    reason = victim.user_attrs[ATTR.FAILURE]  # failed as it died, not a grace period later as a lost worker
    assert reason.startswith("worker process killed (SIGKILL, ") and " on host " in reason, reason
    assert run.data.tags["autotweak.failure"] == reason
    assert f"trial {victim.number} fail (worker process killed (SIGKILL" in out, out
    lines = out.splitlines()
    crash = next(i for i, line in enumerate(lines) if "worker failed: autotweak-worker-" in line)
    assert "exited with code -9 (SIGKILL) after it started" in lines[crash]
    assert any("starting autotweak-worker-2 in its place" in line for line in lines[crash:]), "it is replaced"
    lost = next(i for i, line in enumerate(lines) if line.startswith(f"trial {victim.number} fail"))
    assert crash < lost, "said as it happens, not once the other worker has ended"
    assert "stopped (trials): 4 complete, 1 failed" in out, "the study stopped for its budget, not a crash"
    assert "warning: 1 worker process(es) died in a trial and were replaced" in out, out
    assert "crashed; the others finished the study" not in out


@pytest.mark.slow
def test_whole_run_killed_leaves_stores_readable_and_resumable(home, mlflow_client):
    marker = home / "marks.txt"
    spec = write_spec(
        home / "exp.yaml",
        objective=objective("checkpointed"),
        base={"marker": str(marker), "sleep": 0.3, "steps": 4},
        metric={"name": "loss", "direction": "minimize", "steps": 4},
        budget={"trials": 3},
        execution={"workers": 2, "heartbeat_interval": 1, "grace_period": 2},
    )
    proc = start_cli(["optimize", str(spec)], home.parent)
    wait_for_lines(marker, 2)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    status = subprocess.run(
        [sys.executable, "-m", "autotweak", "status", "study"],
        cwd=home.parent,
        capture_output=True,
        text=True,
    )
    assert status.returncode == 0 and "running" in status.stdout, status.stdout + status.stderr
    time.sleep(2.5)  # past the grace period: the dead trials are stale
    resumed = start_cli(["resume", "study"], home.parent)
    out, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, out
    study = load(autotweak.Experiment.from_dict(base_spec()))
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 3
    assert_stores_agree(mlflow_client, study)


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z"


def _start_two_slow_trials(
    home: Path, *, steps: int, background: bool = False
) -> tuple[subprocess.Popen[str], list[str]]:
    """``optimize`` of 3 trials of ``steps`` x 0.2 s on 2 workers (baseline first), once both have started."""
    marker = home / "marks.txt"
    spec = write_spec(
        home / "exp.yaml",
        objective=objective("checkpointed"),
        base={"marker": str(marker), "sleep": 0.2, "steps": steps, "x": 0.5},
        metric={"name": "loss", "direction": "minimize", "steps": steps},
        budget={"trials": 3},
        execution={"workers": 2, "heartbeat_interval": 1, "grace_period": 3},
    )
    proc = start_cli(["optimize", str(spec)], home.parent, background=background)
    return proc, wait_for_lines(marker, 2)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
def test_workers_stop_as_on_ctrl_c_when_the_main_process_is_killed(home, mlflow_client):
    """kill -9 of ``optimize`` leaves no one to forward Ctrl-C: the workers must not run on alone."""
    proc, started = _start_two_slow_trials(home, steps=50)
    workers = [int(line.split()[1]) for line in started]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.time() + 30
    while time.time() < deadline and any(map(_running, workers)):
        time.sleep(0.2)
    assert not any(map(_running, workers)), "the workers outlived the process that started them"
    study = load(autotweak.Experiment.from_dict(base_spec()))
    stopped = [t for t in study.trials if t.state == TrialState.FAIL]
    assert [t.number for t in stopped] == [0, 1] and len(study.trials) == 4, study.trials
    assert all(t.user_attrs[ATTR.INTERRUPTED] for t in stopped), "recorded as on Ctrl-C, not lost"
    queued = [t for t in study.trials if t.state == TrialState.WAITING]
    assert sorted(t.user_attrs[ATTR.RETRY_OF] for t in queued) == [0, 1]
    runs = mlflow_runs(mlflow_client, "study")
    assert [runs.children[n].data.tags["autotweak.state"] for n in (0, 1)] == ["interrupted"] * 2


def test_ctrl_c_stops_cleanly_and_resume_runs_the_interrupted_trials_first(home, mlflow_client):
    """Interrupted trials (the baseline among them) are queued again, not failed, and cost no budget."""
    proc, _ = _start_two_slow_trials(home, steps=20)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "2 interrupted" in out and "failed" not in out, out
    assert "trial 0 interrupted (queued to run again)" in out and " fail" not in out, out
    study = load(autotweak.Experiment.from_dict(base_spec()))
    assert not [t for t in study.trials if t.state == TrialState.RUNNING], "nothing left half-written"
    stopped = [t for t in study.trials if t.state == TrialState.FAIL]
    assert [t.number for t in stopped] == [0, 1]
    assert all(t.user_attrs[ATTR.INTERRUPTED] for t in stopped)
    assert all("interrupted" in t.user_attrs[ATTR.FAILURE] for t in stopped)
    queued = [t for t in study.trials if t.state == TrialState.WAITING]
    assert sorted(t.user_attrs[ATTR.ROOT] for t in queued) == [0, 1]
    assert [t.user_attrs[ATTR.ROOT] for t in queued if t.user_attrs.get(ATTR.BASELINE)] == [0]
    assert all(t.system_attrs["fixed_params"] == stopped[t.user_attrs[ATTR.RETRY_OF]].params for t in queued)
    assert_stores_agree(mlflow_client, study)
    runs = mlflow_runs(mlflow_client, "study")
    assert runs.parents[0].info.status == "KILLED"
    assert all("interrupted" in runs.children[n].data.tags["autotweak.failure"] for n in (0, 1))
    assert [runs.children[n].data.tags["autotweak.state"] for n in (0, 1)] == ["interrupted"] * 2
    done = subprocess.run(
        [sys.executable, "-m", "autotweak", "resume", "study", "-q"],
        cwd=home.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    study = load(autotweak.Experiment.from_dict(base_spec()))
    assert [t.number for t in study.trials] == list(range(len(study.trials)))
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3, "the interrupted trials do not count against budget.trials"
    assert {t.user_attrs.get(ATTR.RETRY_OF) for t in complete[:2]} == {0, 1}, "run again first"
    summary = summarize(study)
    assert summary.base_value == 0.5 and summary.counts["interrupted"] == 2 and summary.counts["failed"] == 0


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
@pytest.mark.parametrize(
    ("stop_signal", "to_group"),
    [  # the group and hangup variants with the slow tests: the worker side is the same
        pytest.param(signal.SIGTERM, False, id="kill"),
        pytest.param(signal.SIGTERM, True, id="kill-group", marks=pytest.mark.slow),
        pytest.param(signal.SIGHUP, True, id="hangup", marks=pytest.mark.slow),
    ],
)
def test_sigterm_closes_the_study_as_ctrl_c_does_also_in_a_background_job(
    home, mlflow_client, stop_signal, to_group
):
    """`kill`, `docker stop`, end of job, closed terminal: nothing left RUNNING, the trials queued again.

    Started as a background job (SIGINT ignored), as `autotweak optimize ... &` in a script;
    ``kill-group`` is SIGTERM to every process, as SLURM and `kill -TERM -PGID` send it;
    ``hangup`` is SIGHUP to every process, as a closed terminal or ssh session sends it.
    """
    proc, started = _start_two_slow_trials(home, steps=50, background=True)
    workers = [int(line.split()[1]) for line in started]
    if to_group:
        os.killpg(proc.pid, stop_signal)
    else:
        os.kill(proc.pid, stop_signal)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "`autotweak resume study` continues the study" in out and "Traceback" not in out, out
    assert not any(map(_running, workers)), "the workers outlived the study"
    study = load(autotweak.Experiment.from_dict(base_spec()))
    assert not [t for t in study.trials if t.state == TrialState.RUNNING], "nothing left half-written"
    stopped = [t for t in study.trials if t.state == TrialState.FAIL]
    assert [t.number for t in stopped] == [0, 1] and all(t.user_attrs[ATTR.INTERRUPTED] for t in stopped)
    queued = [t for t in study.trials if t.state == TrialState.WAITING]
    assert sorted(t.user_attrs[ATTR.RETRY_OF] for t in queued) == [0, 1]
    runs = mlflow_runs(mlflow_client, "study")
    assert runs.parents[0].info.status == "KILLED"
    assert [runs.children[n].data.tags["autotweak.state"] for n in (0, 1)] == ["interrupted"] * 2


def test_workers_see_the_environment_of_each_run(home, make_experiment, monkeypatch):
    """Workers fork from a server started once; each run's environment must still reach them."""
    results = []
    for mark in ("1", "2"):
        monkeypatch.setenv("AUTOTWEAK_TEST_MARK", mark)
        exp = make_experiment(
            name=f"env-{mark}",
            objective=objective("from_environment"),
            base={"variable": "AUTOTWEAK_TEST_MARK"},
            budget={"trials": 4},
            sampler="random",
            execution={"workers": 2},
        )
        autotweak.optimize(exp)
        results.append({t.value for t in load(exp).trials})
    assert results == [{1.0}, {2.0}]


@pytest.mark.timeout(150)
def test_a_trial_lost_before_its_first_heartbeat_is_failed_and_retried(home, make_experiment, mlflow_client):
    """A worker lost between ``ask`` and its first heartbeat (a dropped connection, a kill)
    leaves a running trial that Optuna's stale sweep never sees; the study must not wait
    for it forever."""
    execution = {"workers": 2, "heartbeat_interval": 1, "grace_period": 2}
    autotweak.optimize(make_experiment(budget={"trials": 2}, execution=execution))
    orphan = load(make_experiment()).ask()  # created, never beating, never run
    exp = make_experiment(budget={"trials": 4}, execution=execution)
    result = autotweak.optimize(exp, resume=True)
    study = load(exp)
    assert study.trials[orphan.number].state == TrialState.FAIL
    retry = [t for t in study.trials if t.user_attrs.get(ATTR.RETRY_OF) == orphan.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert len([t for t in study.trials if ATTR.RETRY_OF not in t.user_attrs]) == 4
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    assert result.summary.counts["complete"] == 4
    assert_stores_agree(mlflow_client, study)
    run = mlflow_runs(mlflow_client, "study").children[orphan.number]
    assert "no heartbeat" in run.data.tags["autotweak.failure"]


def test_a_script_without_the_main_guard_is_refused_before_the_study_exists(home, mlflow_client):
    """Workers import the main script again: unguarded, each would start the study anew."""
    spec = write_spec(home / "exp.yaml", budget={"trials": 4}, execution={"workers": 2})
    script = home / "unguarded.py"
    script.write_text(f"import autotweak\n\nresult = autotweak.optimize({str(spec)!r})\nprint('returned')\n")
    run = subprocess.run(
        [sys.executable, str(script)], cwd=home.parent, capture_output=True, text=True, timeout=180
    )
    assert run.returncode == 1 and "returned" not in run.stdout, run.stdout + run.stderr
    final = run.stderr.strip().splitlines()[-1]
    assert final.startswith(f"autotweak.exceptions.AutotweakError: {script}, line 3: the study is started by")
    assert 'under `if __name__ == "__main__":`' in final
    assert "worker" not in run.stderr.replace(final, ""), "refused in the script's process, no worker started"
    with pytest.raises(KeyError):
        load(autotweak.Experiment.from_dict(base_spec()))  # no study was created
    assert mlflow_client.get_experiment_by_name("study") is None

    guarded = home / "guarded.py"
    guarded.write_text(
        f"import autotweak\n\nif __name__ == '__main__':\n    autotweak.optimize({str(spec)!r})\n"
    )
    run = subprocess.run(
        [sys.executable, str(guarded)], cwd=home.parent, capture_output=True, text=True, timeout=180
    )
    assert run.returncode == 0, run.stderr
    assert len(load(autotweak.Experiment.from_dict(base_spec())).trials) >= 4


@pytest.mark.slow
def test_a_script_read_from_standard_input_runs_workers(home, mlflow_client):
    """``python - <<EOF``: its ``__file__`` is ``<stdin>``, which workers cannot run again."""
    spec = write_spec(home / "exp.yaml", budget={"trials": 4}, execution={"workers": 2})
    source = f"import autotweak\nautotweak.optimize({str(spec)!r})\n"
    run = subprocess.run(
        [sys.executable, "-"], input=source, cwd=home.parent, capture_output=True, text=True, timeout=180
    )
    assert run.returncode == 0, run.stdout + run.stderr
    study = load(autotweak.Experiment.from_dict(base_spec()))
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 4
    assert_stores_agree(mlflow_client, study)


def test_an_objective_defined_in_a_script_from_standard_input_is_refused(home):
    spec = base_spec(budget={"trials": 2}, execution={"workers": 2})
    del spec["objective"]
    source = (
        "import autotweak\n"
        "def train(config, trial):\n    return 0.0\n"
        f"autotweak.optimize({{**{spec!r}, 'objective': train}})\n"
    )
    run = subprocess.run(
        [sys.executable, "-"], input=source, cwd=home.parent, capture_output=True, text=True, timeout=180
    )
    assert run.returncode == 1
    assert "it is defined in <stdin>, which is not a file; worker processes cannot import it" in run.stderr
    assert not (home / "optuna.db").exists() or not optuna.get_all_study_summaries(
        f"sqlite:///{home / 'optuna.db'}"
    ), "refused before the study exists"


def test_workers_that_all_fail_raise_with_each_workers_error(home, make_experiment, mlflow_client):
    broken = home / "broken.py"
    broken.write_text(
        "import multiprocessing\n"
        "if multiprocessing.current_process().name.startswith('autotweak-worker-'):\n"
        "    raise RuntimeError('no GPU on this worker')\n"
        "def train(config, trial):\n"
        "    return config['x']\n"
    )
    exp = make_experiment(objective=f"{broken}:train", budget={"trials": 4}, execution={"workers": 2})
    with pytest.raises(WorkerCrashError) as caught:
        autotweak.optimize(exp)
    assert len(caught.value.errors) == 2
    for index, error in enumerate(sorted(caught.value.errors)):
        assert error.startswith(f"autotweak-worker-{index} failed with ")
        assert "RuntimeError: no GPU on this worker" in error
    assert "before it started" not in str(caught.value), "these workers started: no hint about the guard"
    assert "autotweak resume study" in str(caught.value)
    assert mlflow_runs(mlflow_client, "study").parents[0].info.status == "KILLED"
    broken.write_text("def train(config, trial):\n    return config['x']\n")  # the cause, fixed
    assert autotweak.optimize(exp, resume=True).summary.counts["complete"] == 4


def test_a_study_refuses_to_start_in_a_starting_worker(home, make_experiment, monkeypatch):
    monkeypatch.setattr(multiprocessing.current_process(), "_inheriting", True, raising=False)
    with pytest.raises(autotweak.AutotweakError, match=r'under `if __name__ == "__main__":`'):
        autotweak.optimize(make_experiment())
    assert not (home / "optuna.db").exists(), "nothing was created"


@pytest.mark.timeout(180)
def test_trials_of_workers_that_all_crash_are_failed_and_queued_again_at_once(
    home, make_experiment, mlflow_client
):
    """The parent knows every worker is gone: their trials must not stay running until a resume.

    Each process that exits in its trial is replaced, until FAIL_FAST died with no trial run
    through; each took a retry of trial 0 or 1 (queued before its replacement started).
    """
    script = home / "crashing.py"
    script.write_text(
        "import os\ndef train(config, trial):\n    trial.report(config['x'], 1)\n    os._exit(3)"
    )
    exp = make_experiment(
        objective=f"{script}:train",
        base={"x": 0.5},
        budget={"trials": 3},
        # no stale sweep; retries enough for every death
        execution={"workers": 2, "heartbeat_interval": 1, "grace_period": 600, "max_retries": 9},
    )
    with pytest.raises(WorkerCrashError, match="exited with code 3") as caught:
        autotweak.optimize(exp)
    assert len(caught.value.errors) == FAIL_FAST + 1, "two, and one in place of each of the first four"
    study = load(exp)
    crashed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(crashed) == FAIL_FAST + 1
    # The two workers' first trials: 0 and 1, or 0 and 2 where worker 0 died and its retry was
    # numbered 1 before worker 1, slower to start, asked. Every later death took a retry of one.
    firsts = {t.user_attrs.get(ATTR.ROOT, t.number) for t in crashed}
    assert len(firsts) == 2 and 0 in firsts, firsts
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    for t in crashed:
        failure = t.user_attrs[ATTR.FAILURE]
        assert failure.startswith("its worker process crashed: autotweak-worker-")
        assert "exited with code 3" in failure
    queued = [t for t in study.trials if t.state == TrialState.WAITING]
    assert sorted(t.user_attrs[ATTR.ROOT] for t in queued) == sorted(firsts)
    assert [t.user_attrs[ATTR.ROOT] for t in queued if t.user_attrs.get(ATTR.BASELINE)] == [0]
    assert_stores_agree(mlflow_client, study)
    runs = mlflow_runs(mlflow_client, "study")
    for t in crashed:
        assert runs.children[t.number].data.tags["autotweak.failure"] == t.user_attrs[ATTR.FAILURE]
        curve = mlflow_client.get_metric_history(runs.children[t.number].info.run_id, "loss")
        assert [m.value for m in curve] == [t.params.get("x", 0.5)], "the curve the trial reported is kept"
    status = subprocess.run(
        [sys.executable, "-m", "autotweak", "status", "study"],
        cwd=home.parent,
        capture_output=True,
        text=True,
    )
    assert status.returncode == 0 and "running" not in status.stdout, status.stdout + status.stderr
    script.write_text("def train(config, trial):\n    return config['x']\n")  # the cause, fixed
    assert autotweak.optimize(exp, resume=True).summary.counts["complete"] == 3
    study = load(exp)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert {t.user_attrs.get(ATTR.ROOT) for t in complete[:2]} == {0, 1}, "the retries run first"
    assert summarize(study).base_value == 0.5
    assert_stores_agree(mlflow_client, study)


GUARDED_OBJECTIVE = """
import sys
import autotweak
from autotweak.engine._executors import ProcessExecutor


class Unchecked(ProcessExecutor):
    def check_objective(self, objective):
        pass


def top(config, trial):
    return config["x"]


if __name__ == "__main__":
    def inner(config, trial):
        return config["x"]

    objective = top if sys.argv[1] == "top" else inner
    spec = dict({spec!r}, name=sys.argv[1], objective=objective)
    executor = Unchecked(2) if sys.argv[1] == "unchecked" else None
    result = autotweak.optimize(spec, executor=executor)
    print("complete", result.summary.counts["complete"])
"""


@pytest.mark.slow
def test_an_objective_defined_under_the_main_guard_is_refused_before_the_study_exists(home):
    """Pickled by reference it passes a pickle check, but workers import the script without its guard."""
    script = home / "guarded.py"
    spec = base_spec(budget={"trials": 2}, execution={"workers": 2})
    del spec["objective"]
    script.write_text(GUARDED_OBJECTIVE.format(spec=spec))

    def run(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), name], cwd=home.parent, capture_output=True, text=True, timeout=180
        )

    refused = run("inner")
    assert refused.returncode == 1 and "complete" not in refused.stdout, refused.stdout + refused.stderr
    final = refused.stderr.strip().splitlines()[-1]
    assert final.startswith(
        "autotweak.exceptions.SpecError: 'objective' must be a function defined at the top"
    )
    assert f"got inner: {script} does not define it at module level" in final
    assert 'outside `if __name__ == "__main__":`' in final
    storage = f"sqlite:///{home / 'optuna.db'}"
    assert not (home / "optuna.db").exists() or not optuna.get_all_study_names(storage), "nothing was created"
    assert run("top").stdout.split() == ["complete", "2"], "a function at the script's top level runs"
    crashed = run("unchecked")  # the check skipped: each worker's own error is named
    assert crashed.returncode == 1, crashed.stdout + crashed.stderr
    final = crashed.stderr.strip().splitlines()[-1]
    assert "WorkerCrashError: every worker of study 'unchecked' failed" in final
    for index in (0, 1):
        assert f"autotweak-worker-{index} failed with AttributeError: Can't get attribute 'inner'" in final
    assert "before it started" not in final, "not blamed on a missing guard"
