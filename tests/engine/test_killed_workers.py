"""Local worker processes that die mid-trial (the kernel's OOM killer): failed at once, replaced, bounded."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

import autotweak
import autotweak.engine._crashed
import autotweak.engine._lost_trials
from autotweak.engine._crashed import CrashSettler
from autotweak.engine._executors import WorkerCrashError
from autotweak.engine._killed import KILLED, oom_kills
from autotweak.engine._loop import FAIL_FAST
from autotweak.engine._study import ATTR, state_of
from autotweak.report import build_report
from autotweak.spec import Experiment
from tests.conftest import objective
from tests.engine.counts import count_around_requeue, done
from tests.helpers import load, mlflow_runs

# No stale-trial sweep within the test: a trial failed is failed by the process that saw its worker die.
NO_SWEEP = {"workers": 2, "heartbeat_interval": 1, "grace_period": 600, "max_retries": 3}


def _killed_study(make_experiment, **base: object):
    return make_experiment(
        objective=objective("killed_above"),
        base={"x": 0.0, "kill_above": 0.0, **base},
        budget={"trials": 6},
        execution=NO_SWEEP,
    )


def _optimize_dying(exp: Experiment, caplog: pytest.LogCaptureFixture) -> tuple[Any, optuna.Study, list[Any]]:
    """Run ``exp``, whose configs of x > 0 end their process; its result, study and those trials."""
    with caplog.at_level("WARNING", logger="autotweak"):
        result = autotweak.optimize(exp)
    study = load(exp)
    dead = [t for t in study.trials if t.params.get("x", 0.0) > 0.0]
    assert dead, "the seeded sampler proposes configs that end their process"
    return result, study, dead


@pytest.mark.timeout(240)
def test_a_killed_worker_process_fails_its_trial_at_once_and_is_replaced(
    home, make_experiment, mlflow_client, caplog
):
    """Its trial fails saying why (not as a lost worker), runs again once at most; the budget is spent."""
    result, study, killed = _optimize_dying(_killed_study(make_experiment), caplog)
    for trial in killed:
        assert state_of(trial) == "failed", (trial.number, trial.state, trial.user_attrs)
        assert trial.user_attrs[ATTR.FAILURE].startswith(KILLED), trial.user_attrs[ATTR.FAILURE]
    firsts = [t for t in killed if ATTR.RETRY_OF not in t.user_attrs]
    for first in firsts:  # run again once, in a fresh process; killed again, not a third time (max_retries 3)
        retries = [t for t in killed if t.user_attrs.get(ATTR.RETRY_OF) == first.number]
        assert [t.user_attrs[ATTR.ATTEMPT] for t in retries] == [2], first.number
    assert not [t for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert len([t for t in study.trials if ATTR.RETRY_OF not in t.user_attrs]) == 6, "the budget is spent"
    assert result.summary.counts["failed"] == len(killed)
    assert result.summary.counts["complete"] == 6 - len(firsts)
    assert result.trials_run == len(study.trials), "a killed process's trial counts as run"
    assert sum("in its place" in m for m in caplog.messages) == len(killed), "each killed process is replaced"
    assert result.workers_replaced == len(killed)
    assert result.stop_reasons == ["trials", "trials"], "the study stopped for its budget, not for a crash"
    runs = mlflow_runs(mlflow_client, "study")
    for trial in killed:
        run = runs.children[trial.number]
        failure = run.data.tags["autotweak.failure"]
        assert (run.info.status, failure) == ("FAILED", trial.user_attrs[ATTR.FAILURE])
    failures = build_report(study).failures
    assert failures is not None
    listed = {n.strip() for row in failures.rows for n in row[2].split(",")}
    assert listed == {str(t.number) for t in killed}


@pytest.mark.timeout(240)
def test_the_progress_count_never_steps_back_as_a_killed_workers_trial_runs_again(
    home, make_experiment, monkeypatch
):
    """Read between a trial failing as its process died and its retry being queued, the count holds.

    The process that saw the death fails the trial, closes its record, then queues its retry:
    a count read in between counted the failed trial, then one less once its retry stood in.
    """
    exp = _killed_study(make_experiment)
    around = count_around_requeue(monkeypatch, autotweak.engine._lost_trials, exp)
    shown: list[int] = []
    autotweak.optimize(exp, on_progress=lambda progress: shown.append(progress.done))
    assert around, "killed workers' trials were queued again"
    assert all(before <= after for before, after in around), around
    assert shown == sorted(shown), f"the count shown stepped back: {shown}"
    final = done(load(exp), exp)
    assert final == 6, "each trial of the budget ended (a killed retry is not run a third time)"
    assert max(shown + [n for pair in around for n in pair]) <= final, "never more done than at the end"


@pytest.mark.timeout(240)
def test_a_worker_process_that_segfaults_fails_its_trial_at_once_naming_its_signal(home, make_experiment):
    """A crash in native code is no OOM kill: its trial is retried within max_retries; the study goes on."""
    exp = make_experiment(
        objective=objective("killed_above"),
        base={"x": 0.0, "kill_above": 0.0, "segfault": True},
        budget={"trials": 4},
        execution={**NO_SWEEP, "max_retries": 1},
    )
    result = autotweak.optimize(exp)
    crashed = [t for t in load(exp).trials if t.params.get("x", 0.0) > 0.0]
    assert crashed
    for trial in crashed:
        reason = trial.user_attrs[ATTR.FAILURE]
        assert reason.startswith("its worker process crashed: autotweak-worker-"), reason
        assert "exited with code -11 (SIGSEGV) after it started" in reason
    assert result.summary.counts["failed"] == len(crashed)
    assert len([t for t in load(exp).trials if ATTR.RETRY_OF not in t.user_attrs]) == 4, "the budget is spent"


@pytest.mark.timeout(240)
def test_a_worker_process_that_exits_in_a_trial_is_replaced_as_a_killed_one(home, make_experiment, caplog):
    """``os._exit(3)`` (a native library's ``exit()``) is no signal, but the trial's doing all the same.

    Its trial fails at once, runs again within max_retries, and a new process takes the
    dead one's place: the study keeps its two workers and spends its budget. It went on
    with one fewer, and ended once both had exited, the budget unspent.
    """
    exp = make_experiment(
        objective=objective("killed_above"),
        base={"x": 0.0, "kill_above": 0.0, "exit_code": 3},
        budget={"trials": 6},
        execution={**NO_SWEEP, "max_retries": 1},
    )
    result, study, exited = _optimize_dying(exp, caplog)
    for trial in exited:
        reason = trial.user_attrs[ATTR.FAILURE]
        assert reason.startswith("its worker process crashed: autotweak-worker-"), reason
        assert "exited with code 3 after it started" in reason, reason
    assert result.workers_replaced == len(exited), "each process that exited is replaced"
    assert sum("in its place" in m for m in caplog.messages) == len(exited)
    assert result.stop_reasons == ["trials", "trials"], "the study stopped for its budget, not for a crash"
    assert len([t for t in study.trials if ATTR.RETRY_OF not in t.user_attrs]) == 6, "the budget is spent"
    assert not [t for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


@pytest.mark.timeout(240)
def test_worker_processes_killed_by_every_config_stop_by_the_fail_fast_rule(home, make_experiment, caplog):
    """Every config kills its process: replacements stop after FAIL_FAST deaths, and the error says why."""
    exp = _killed_study(make_experiment, kill_above=-10.0)
    with caplog.at_level("WARNING", logger="autotweak"), pytest.raises(WorkerCrashError) as caught:
        autotweak.optimize(exp)
    started = sum("in its place" in m for m in caplog.messages)
    assert started == FAIL_FAST - 1, "replaced until the fifth death, then the others end the study"
    assert len(caught.value.errors) == FAIL_FAST + 1
    assert all(KILLED in error for error in caught.value.errors), caught.value.errors
    assert not [t for t in load(exp).trials if t.state == TrialState.RUNNING]


def _memory_cgroup() -> Path | None:
    """A cgroup v1 memory folder this process may make children in, if any."""
    try:
        line = next(x for x in Path("/proc/self/cgroup").read_text().splitlines() if ":memory:" in x)
    except (OSError, StopIteration):
        return None
    folder = Path("/sys/fs/cgroup/memory") / line.split(":", 2)[2].lstrip("/")
    return folder if os.access(folder, os.W_OK) and (folder / "memory.limit_in_bytes").exists() else None


@pytest.fixture
def memory_cgroup() -> Iterator[Path]:
    folder = _memory_cgroup()
    if folder is None or oom_kills() is None:
        pytest.skip("needs a cgroup v1 memory folder it may write to (root), and /proc/vmstat's oom_kill")
    before = set(folder.glob("autotweak-test-*"))
    yield folder
    for child in set(folder.glob("autotweak-test-*")) - before:  # emptied as their processes died
        with contextlib.suppress(OSError):
            child.rmdir()  # a cgroup goes with rmdir alone


@pytest.mark.timeout(240)
def test_a_worker_process_out_of_memory_says_the_kernel_killed_it(home, make_experiment, memory_cgroup):
    """A real OOM kill in a memory cgroup: the trial's reason says out of memory, from the kernel's count."""
    exp = _killed_study(make_experiment, oom=str(memory_cgroup))
    autotweak.optimize(exp)
    killed = [t for t in load(exp).trials if t.params.get("x", 0.0) > 0.0]
    assert killed
    for trial in killed:
        reason = trial.user_attrs[ATTR.FAILURE]
        assert reason.startswith(f"{KILLED}, by the kernel's OOM killer: out of memory) on host "), reason


def test_worker_processes_the_oom_killer_ended_at_once_are_each_told_so(monkeypatch, make_experiment):
    """Both kills show in the count read as the first death is seen: the second death is one of them too."""
    counts = iter([5, 7, 7, 8, 8])  # before the workers start, then as each of four dies
    monkeypatch.setattr(autotweak.engine._crashed, "oom_kills", lambda: next(counts))
    settler = CrashSettler(make_experiment(), lambda: pytest.fail("no study is needed"), None)
    assert [settler._claim_oom_kill() for _ in range(4)] == [True, True, True, False]
