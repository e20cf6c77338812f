"""Trial records written by a helper process: where they go, when it starts, what a crash leaves."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

import autotweak
from autotweak.exceptions import AutotweakError, TrackingError
from autotweak.tracking import BaseTracker, MlflowTracker, OffloadingTracker, TrialRecord, TrialStart
from autotweak.tracking._offload import ENV_VAR, offload_mode
from autotweak.tracking._offload_process import TrackerProcess
from tests.conftest import objective
from tests.helpers import mlflow_runs
from tests.tracking.pid_tracker import NotingTracker, PidTracker


def _start(number: int) -> TrialStart:
    return TrialStart(
        study_name="offload",
        study_run_id=None,
        number=number,
        trial_id=number + 1,
        config={"x": 0.5},
        params={"x": 0.5},
        attempt=1,
        retry_of=None,
        seed=0,
        provenance={},
    )


def _record(run_id: str, number: int, *, duration: float = 0.01, failure: str | None = None) -> TrialRecord:
    return TrialRecord(
        run_id=run_id,
        number=number,
        state="failed" if failure else "complete",
        metric="loss",
        value=None if failure else 0.25,
        steps=[(1, 0.5, 0), (2, 0.3, 0)],
        duration=duration,
        compute=1.0,
        failure=failure,
    )


def _pid_of(run_id: str) -> int:
    return int(run_id.split(":")[0])


def _offloading(mode: str = "on", *, idle_core: bool = True) -> OffloadingTracker:
    return OffloadingTracker(PidTracker(), PidTracker, mode=mode, idle_core=idle_core)  # type: ignore[arg-type]


@pytest.fixture
def ready() -> Iterator[OffloadingTracker]:
    tracker = _offloading("on")
    assert tracker.process is not None and tracker.process.ready(timeout=60)
    yield tracker
    tracker.close()


def test_trial_records_are_written_by_the_helper_once_it_is_ready(ready: OffloadingTracker) -> None:
    assert ready.process is not None
    helper = ready.process.pid
    assert ready.threaded_writes  # a write is now a wait for the helper: a thread overlaps it
    run_id = ready.start_trial(_start(0))
    assert _pid_of(run_id) == helper != os.getpid()
    ready.end_trial(_record(run_id, 0))
    assert ready.offloaded == 1
    assert ready.start_study(_info()) == f"{os.getpid()}:study"  # study-level calls stay here


def _info() -> autotweak.tracking.StudyInfo:
    return autotweak.tracking.StudyInfo(study_name="offload", spec={}, meta={}, storage="sqlite://")


@pytest.mark.parametrize(
    ("durations", "idle_core", "started"),
    [
        ([0.05, 0.05, 0.05], True, True),
        ([0.05, 3.0, 0.05], True, True),  # the median of the last three
        ([0.05, 0.05], True, False),
        ([5.0, 5.0, 5.0], True, False),
        ([0.05, 0.05, 0.05], False, False),
    ],
    ids=["short", "mostly-short", "too-few", "long", "no-idle-core"],
)
def test_auto_starts_the_helper_only_after_short_trials_on_an_idle_core(
    durations: list[float], idle_core: bool, started: bool
) -> None:
    tracker = _offloading("auto", idle_core=idle_core)
    try:
        assert tracker.process is None
        for number, duration in enumerate(durations):
            tracker.end_trial(_record(tracker.start_trial(_start(number)), number, duration=duration))
        assert (tracker.process is not None) is started
    finally:
        tracker.close()


def test_off_never_starts_it() -> None:
    tracker = _offloading("off")
    for number in range(5):
        tracker.end_trial(_record(tracker.start_trial(_start(number)), number))
    assert tracker.process is None


def test_records_are_written_here_until_the_helper_is_ready() -> None:
    tracker = _offloading("on")
    try:
        assert tracker.process is not None
        assert not tracker.threaded_writes  # PidTracker's writes are this process's own
        first = tracker.start_trial(_start(0))  # the helper is still importing its tracker
        assert _pid_of(first) == os.getpid()
        tracker.end_trial(_record(first, 0))
        assert tracker.offloaded == 0
    finally:
        tracker.close()


def test_an_error_in_the_helper_is_raised_here_and_the_helper_goes_on(ready: OffloadingTracker) -> None:
    run_id = ready.start_trial(_start(0))
    with pytest.raises(TrackingError, match="ValueError: asked to fail"):
        ready.end_trial(_record(run_id, 0, failure="raise"))
    assert ready.process is not None and ready.process.broken is None
    assert _pid_of(ready.start_trial(_start(1))) == ready.process.pid


def test_a_helper_that_cannot_build_its_tracker_leaves_the_records_here() -> None:
    tracker = OffloadingTracker(PidTracker(), _no_tracker, mode="on")
    try:
        assert tracker.process is not None
        assert not tracker.process.ready(timeout=60)
        assert "could not build the tracker" in str(tracker.process.broken)
        run_id = tracker.start_trial(_start(0))
        assert _pid_of(run_id) == os.getpid()
        assert tracker.process is None  # not tried again
    finally:
        tracker.close()


def _no_tracker() -> BaseTracker:
    raise RuntimeError("no tracker here")


def test_an_exchange_cut_by_ctrl_c_retires_the_helper_and_it_exits_by_itself(
    ready: OffloadingTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    process = ready.process
    assert process is not None

    def interrupted() -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(process, "_answer", interrupted)
        with pytest.raises(KeyboardInterrupt):
            ready.start_trial(_start(0))
    assert process.broken is not None  # its answer would be paired with the next call
    assert _pid_of(ready.start_trial(_start(1))) == os.getpid()
    assert ready.process is None and _gone(process.pid, within=30)


def test_a_killed_helper_loses_no_record(home: Path, mlflow_client: MlflowClient) -> None:
    uri = f"sqlite:///{home / 'mlflow.db'}"
    tracker = OffloadingTracker(MlflowTracker(uri), functools.partial(MlflowTracker, uri), mode="on")
    assert tracker.process is not None and tracker.process.ready(timeout=60)
    closed = tracker.start_trial(_start(0))
    tracker.end_trial(_record(closed, 0))
    left_open = tracker.start_trial(_start(1))  # opened by the helper, closed after it died
    os.kill(tracker.process.pid, signal.SIGKILL)
    tracker.process._proc.wait()
    tracker.end_trial(_record(left_open, 1))
    after = tracker.start_trial(_start(2))
    tracker.end_trial(_record(after, 2))
    assert tracker.process is None
    tracker.close()
    runs = mlflow_runs(mlflow_client, "offload")
    assert sorted(runs.children) == [0, 1, 2] and not runs.duplicates
    for run in runs.children.values():
        assert run.info.status == "FINISHED"
        assert [m.value for m in mlflow_client.get_metric_history(run.info.run_id, "loss")] == [0.5, 0.3]
        assert run.data.params == {"x": "0.5"}


def _helper_ended_quietly(process: TrackerProcess, capfd: pytest.CaptureFixture[str]) -> None:
    assert process._proc.returncode == 0
    err = capfd.readouterr().err  # the helper writes to this process's stderr
    for sign in ("BrokenPipeError", "ConnectionResetError", "EOFError", "in serve", "in _answer_calls"):
        assert sign not in err, err


def test_a_helper_closed_before_it_was_ready_exits_quietly(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes"
    process = TrackerProcess(functools.partial(NotingTracker, str(notes), build_s=1.0))
    process.close()  # a short study ends while the helper still builds its tracker
    _helper_ended_quietly(process, capfd)
    assert notes.read_text() == "close\n"


def test_a_helper_whose_ready_answer_was_never_read_exits_quietly(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes"
    process = TrackerProcess(functools.partial(NotingTracker, str(notes)))
    assert process._conn.poll(60)  # it said it is ready; nobody asked yet
    process.close()
    _helper_ended_quietly(process, capfd)
    assert notes.read_text() == "close\n"


def test_a_helper_cut_off_mid_write_finishes_it_and_exits_quietly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes"
    tracker = OffloadingTracker(
        PidTracker(), functools.partial(NotingTracker, str(notes), write_s=1.0), mode="on"
    )
    process = tracker.process
    assert process is not None and process.ready(timeout=60)
    run_id = tracker.start_trial(_start(0))

    def interrupted() -> None:
        raise KeyboardInterrupt  # Ctrl-C here while the helper writes

    with monkeypatch.context() as patch:
        patch.setattr(process, "_answer", interrupted)
        with pytest.raises(KeyboardInterrupt):
            tracker.end_trial(_record(run_id, 0))
    tracker.end_trial(_record(run_id, 0))  # redone here: the helper is retired
    tracker.close()
    _helper_ended_quietly(process, capfd)
    assert notes.read_text() == "end_trial 0\nclose\n"


_ORPHAN = textwrap.dedent(
    """
    import os, sys
    sys.path[:0] = {path!r}
    from tests.tracking.pid_tracker import NotingTracker, PidTracker
    from autotweak.tracking import OffloadingTracker
    tracker = OffloadingTracker(PidTracker(), PidTracker, mode="on")
    assert tracker.process.ready(timeout=60)
    print(tracker.process.pid, flush=True)
    os.kill(os.getpid(), 9)
    """
)


def test_the_helper_exits_when_its_parent_is_killed() -> None:
    script = _ORPHAN.format(path=[str(Path(__file__).parents[2])])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    helper = int(done.stdout.split()[0])
    assert _gone(helper, within=30)


def test_ctrl_c_does_not_stop_the_helper(ready: OffloadingTracker) -> None:
    assert ready.process is not None
    os.kill(ready.process.pid, signal.SIGINT)
    time.sleep(0.5)
    assert _pid_of(ready.start_trial(_start(0))) == ready.process.pid


def test_ctrl_c_while_the_helper_starts_is_ignored(capfd: pytest.CaptureFixture[str]) -> None:
    """A terminal's Ctrl-C reaches the helper during its imports too: no traceback, no lost helper."""
    tracker = _offloading("on")
    try:
        assert tracker.process is not None
        time.sleep(0.3)  # Python is up and importing autotweak (about a second)
        os.kill(tracker.process.pid, signal.SIGINT)
        assert tracker.process.ready(timeout=60)
        assert _pid_of(tracker.start_trial(_start(0))) == tracker.process.pid
    finally:
        tracker.close()
    assert "KeyboardInterrupt" not in capfd.readouterr().err


def test_close_ends_the_helper(ready: OffloadingTracker) -> None:
    assert ready.process is not None
    helper = ready.process.pid
    ready.close()
    assert ready.process is None and _gone(helper, within=30)


def test_a_study_that_ends_while_the_helper_imports_does_not_wait_for_it(tmp_path: Path) -> None:
    """A short study starts the helper after three trials and may end before it is ready."""
    notes = tmp_path / "notes"
    tracker = OffloadingTracker(
        PidTracker(), functools.partial(NotingTracker, str(notes), build_s=10.0), mode="on"
    )
    assert tracker.process is not None
    helper = tracker.process.pid
    run_id = tracker.start_trial(_start(0))
    assert _pid_of(run_id) == os.getpid()  # written here: the helper is not ready
    tracker.close()
    assert _gone(helper, within=5)
    assert not notes.exists()  # ended before it built its tracker, not waited for


def test_a_bad_setting_names_the_variable_and_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "sometimes")
    with pytest.raises(AutotweakError, match=rf"\${ENV_VAR} must be one of auto, on, off, got 'sometimes'"):
        offload_mode()
    monkeypatch.setenv(ENV_VAR, " ON ")
    assert offload_mode() == "on"


def test_ask_tell_records_every_trial_through_the_helper(
    home: Path, make_experiment, mlflow_client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, "on")
    exp = make_experiment(name="asktell", metric={"name": "loss", "direction": "minimize", "steps": 3})
    with autotweak.Study(exp) as study:
        tracker = study._prepared.tracker
        assert isinstance(tracker, OffloadingTracker) and tracker.process is not None
        assert tracker.process.ready(timeout=60)
        helper = tracker.process.pid
        while (trial := study.ask()) is not None:
            for step in (1, 2, 3):
                trial.report(trial.config["x"] ** 2 / step, step)
            study.tell(trial, trial.config["x"] ** 2 / 3)
    assert tracker.offloaded == 6 and _gone(helper, within=30)
    runs = mlflow_runs(mlflow_client, "asktell")
    assert sorted(runs.children) == list(range(6)) and len(runs.parents) == 1
    for run in runs.children.values():
        assert run.info.status == "FINISHED" and run.data.tags["autotweak.state"] == "complete"
        assert len(mlflow_client.get_metric_history(run.info.run_id, "loss")) == 3


def test_optimize_leaves_no_helper_behind_and_every_record_closed(
    home: Path,
    make_experiment,
    mlflow_client: MlflowClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(ENV_VAR, "on")
    caplog.set_level(logging.DEBUG, logger="autotweak.tracking")
    exp = make_experiment(name="inline", objective=objective("quadratic"), budget={"trials": 12})
    result = autotweak.optimize(exp)
    assert result.summary.counts.get("complete") == 12
    assert "trial records go to tracking process" in caplog.text  # the worker had a helper
    assert not _helpers_of(os.getpid())
    runs = mlflow_runs(mlflow_client, "inline")
    assert sorted(runs.children) == list(range(12))
    assert {run.info.status for run in runs.children.values()} == {"FINISHED"}


def _gone(pid: int, *, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        if not Path(f"/proc/{pid}").exists() or _zombie(pid):
            return True
        time.sleep(0.05)
    return False


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (OSError, IndexError):
        return True


def _helpers_of(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if (
            f"PPid:\t{parent}\n" in status
            and b"autotweak.tracking._offload" in cmdline
            and not _zombie(int(entry.name))
        ):
            found.append(int(entry.name))
    return found
