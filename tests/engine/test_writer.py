"""The record writer: in order, off the caller's thread, failures logged, nothing left behind.

And what the engine does when the tracker is away: the trial goes on, its record follows.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import optuna
import pytest

import autotweak
import autotweak.engine._late
import autotweak.engine._writer
from autotweak._locations import resolve_storage_url
from autotweak.engine._reconcile import reconcile
from autotweak.engine._trial import Trial
from autotweak.engine._writer import RecordWriter
from autotweak.exceptions import TrackingError
from autotweak.tracking import MlflowTracker, TrialStart
from tests.helpers import mlflow_runs


def test_writes_run_in_order_on_another_thread_and_close_waits_for_them():
    done: list[int] = []
    threads: set[str] = set()

    def write(i: int) -> None:
        time.sleep(0.01)
        threads.add(threading.current_thread().name)
        done.append(i)

    writer = RecordWriter(limit=3)
    for i in range(10):
        writer.submit(lambda i=i: write(i), f"write {i}")
    writer.close()
    assert done == list(range(10))
    assert threading.current_thread().name not in threads
    assert len(threads) == 1


def test_submit_waits_when_the_limit_is_reached():
    release = threading.Event()
    writer = RecordWriter(limit=1)
    writer.submit(release.wait, "a blocked write")
    waiter = threading.Thread(target=writer.submit, args=(lambda: None, "the next write"))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive(), "the second write must wait for the first"
    release.set()
    waiter.join(5)
    assert not waiter.is_alive()
    writer.close()


def test_a_failed_write_is_logged_and_the_next_ones_still_run(caplog: pytest.LogCaptureFixture):
    done: list[str] = []

    def fail() -> None:
        raise ConnectionError("tracking server gone")

    with caplog.at_level(logging.WARNING, logger="autotweak"), RecordWriter() as writer:
        writer.submit(fail, "the record of trial 3")
        writer.submit(lambda: done.append("after"), "the record of trial 4")
    assert done == ["after"]
    [record] = [r for r in caplog.records if "trial 3" in r.getMessage()]
    assert "closed from Optuna's record" in record.getMessage()
    assert "tracking server gone" in (record.exc_text or "")


def test_a_tracker_that_goes_down_and_comes_back_is_told_once_each_way_and_its_dropped_records_counted(
    monkeypatch: pytest.MonkeyPatch,
):
    """Not once per record: a study running for hours is told when it starts, and when it ends."""
    down: list[str | None] = [None]
    told: list[str | None] = []

    def write() -> None:
        if down[0]:
            raise ConnectionError("tracking server gone")

    writer = RecordWriter(unreachable=lambda: down[0], on_change=told.append)
    writer.submit(write, "the record of trial 0")
    writer.wait()
    down[0] = "no MLflow server answers"
    for i in (1, 2, 3):
        writer.submit(write, f"the record of trial {i}")
    writer.wait()
    monkeypatch.setattr(autotweak.engine._writer, "_ASK_AGAIN_S", 0.0)  # asked again at the next write
    down[0] = None
    writer.submit(write, "the record of trial 4")
    writer.close()
    assert told == ["no MLflow server answers", None]
    assert writer.dropped == 3 and writer.lost == "no MLflow server answers"


def test_call_gives_its_result_in_order_with_the_writes():
    done: list[str] = []

    def open_record() -> str:
        time.sleep(0.05)
        done.append("open")
        return "run-1"

    with RecordWriter(limit=2) as writer:
        run_id = writer.call(open_record)
        assert done == []  # the caller goes on while the record opens
        writer.submit(lambda: done.append(f"close {run_id()}"), "the close")
        assert run_id() == "run-1"
    assert done == ["open", "close run-1"]


def test_a_failed_call_raises_to_whoever_waits_and_does_not_block_the_writer():
    def fail() -> str:
        raise ConnectionError("tracking server gone")

    with RecordWriter(limit=1) as writer:
        run_id = writer.call(fail)
        writer.submit(lambda: None, "a write past the limit")  # waits for the failed call, quietly
        with pytest.raises(ConnectionError, match="tracking server gone"):
            run_id()


def _first_opening_fails(
    calls: list[int], then: Callable[[MlflowTracker], None] | None = None
) -> Callable[[MlflowTracker, TrialStart], str]:
    """``MlflowTracker.start_trial`` failing once, as a server restarting; ``then`` runs at the next call."""
    original = MlflowTracker.start_trial

    def flaky(self: MlflowTracker, start: TrialStart) -> str:
        calls.append(start.number)
        if len(calls) == 1:
            raise ConnectionError("tracking server restarting")
        if len(calls) == 2 and then is not None:
            then(self)
        return original(self, start)

    return flaky


def test_a_record_that_could_not_be_opened_is_opened_when_the_trial_ends(
    home, make_experiment, mlflow_client, caplog: pytest.LogCaptureFixture
):
    """The worker opens records on its writer; a failed opening costs the trial nothing."""
    exp = make_experiment(name="reopen", budget={"trials": 3})
    calls: list[int] = []
    with pytest.MonkeyPatch.context() as mp, caplog.at_level(logging.WARNING, logger="autotweak"):
        mp.setattr(MlflowTracker, "start_trial", _first_opening_fails(calls))
        result = autotweak.optimize(exp)
    assert result.summary.counts["complete"] == 3
    assert calls == [0, 0, 1, 2]  # trial 0 opened again when it ended
    runs = mlflow_runs(mlflow_client, "reopen")
    assert sorted(runs.children) == [0, 1, 2] and not runs.duplicates
    first = runs.children[0]
    assert first.info.status == "FINISHED" and first.data.tags["autotweak.state"] == "complete"
    assert len(mlflow_client.get_metric_history(first.info.run_id, "loss")) == 5
    assert any("trial 0: its record could not be opened" in r.getMessage() for r in caplog.records)


def test_a_record_opened_again_as_its_trial_ends_after_a_catch_up_elsewhere_opened_it_is_not_a_second(
    home, make_experiment, mlflow_client, monkeypatch: pytest.MonkeyPatch
):
    """Trial 0's opening failed; the study's close in another process wrote its record before its end.

    The catch-up runs here, just before the opening again, as another process's would: no
    opening of the trial is under way then. The trial kept two records, one RUNNING.
    """
    exp = make_experiment(name="reopen-late", budget={"trials": 1})
    calls: list[int] = []

    def catch_up_elsewhere(tracker: MlflowTracker) -> None:  # before the opening again, as the trial ends
        study = optuna.load_study(study_name="reopen-late", storage=resolve_storage_url(None))
        assert reconcile(study, MlflowTracker(tracker.tracking_uri), "loss", 5) == 1

    monkeypatch.setattr(MlflowTracker, "start_trial", _first_opening_fails(calls, then=catch_up_elsewhere))
    monkeypatch.setattr(autotweak.engine._late, "LATE_S", 0.0)  # the catch-up came a grace period later
    autotweak.optimize(exp)
    assert calls == [0, 0, 0]
    runs = mlflow_runs(mlflow_client, "reopen-late")
    assert sorted(runs.children) == [0] and not runs.duplicates
    record = runs.children[0]
    assert (
        record.info.status == "FINISHED"
        and len(mlflow_client.get_metric_history(record.info.run_id, "loss")) == 5
    )


def test_a_curve_flush_that_fails_keeps_its_points_for_the_next_one(tmp_path, caplog):
    """A tracker away mid-trial must not stop the training: report() goes on."""
    written: list[list[int]] = []
    away = [True]

    def flush(steps: list[tuple[int, float, int]]) -> None:
        if away[0]:
            raise ConnectionError("tracking server gone")
        written.append([s for s, _, _ in steps])

    study = optuna.create_study()
    handle = Trial(study.ask(), {}, checkpoint_dir=tmp_path, flush=flush, flush_every=0.0)
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        handle.report(0.5, 1)
        handle.report(0.4, 2)
    assert written == [] and [s for s, _, _ in handle.unflushed_steps()] == [1, 2]
    assert any("could not be written yet" in r.getMessage() for r in caplog.records)
    away[0] = False
    handle.report(0.3, 3)
    assert written == [[1, 2, 3]] and handle.unflushed_steps() == []


def test_writes_a_thread_cannot_overlap_run_on_the_callers_thread(caplog: pytest.LogCaptureFixture):
    threads: list[str] = []
    threaded = [False]

    def fail() -> str:
        raise ConnectionError("store locked")

    with (
        caplog.at_level(logging.WARNING, logger="autotweak"),
        RecordWriter(threaded=lambda: threaded[0]) as writer,
    ):
        writer.submit(lambda: threads.append(threading.current_thread().name), "an inline write")
        assert threads == [threading.current_thread().name]  # done on return
        run_id = writer.call(lambda: "run-1")
        failed = writer.call(fail)  # its error goes to whoever asks, as on the thread
        writer.submit(fail, "the record of trial 7")
        threaded[0] = True
        writer.submit(lambda: threads.append(threading.current_thread().name), "a threaded write")
        writer.wait()
    assert run_id() == "run-1"
    with pytest.raises(ConnectionError, match="store locked"):
        failed()
    assert threads[1] != threading.current_thread().name
    assert any("trial 7" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("uri", "threaded"),
    [("sqlite:///mlflow.db", False), ("http://127.0.0.1:5000", True), ("https://mlflow.lab", True)],
)
def test_only_a_tracking_servers_writes_go_to_the_thread(tmp_path, monkeypatch, uri: str, threaded: bool):
    monkeypatch.chdir(tmp_path)
    assert MlflowTracker(uri).threaded_writes is threaded


def test_a_tracker_that_does_not_answer_is_asked_once_and_its_writes_dropped(caplog):
    hung, done, asked = threading.Event(), [], []

    def unreachable() -> str:
        asked.append(1)
        return "tracking URI http://127.0.0.1:1: no MLflow server answers (connection refused)"

    writer = RecordWriter(limit=1, unreachable=unreachable)
    began = time.monotonic()
    with caplog.at_level(logging.INFO, logger="autotweak"):
        writer.submit(hung.wait, "a write waiting out MLflow's retries")
        writer.submit(lambda: done.append("next"), "the next write")  # asks after 5 s, then drops it
        opened = writer.call(lambda: "run-1")
        writer.close()
    assert time.monotonic() - began < 15
    assert done == [] and len(asked) == 1
    with pytest.raises(TrackingError, match="no MLflow server answers"):
        opened()
    # autotweak's records only: another test's write may still be retrying a dead server (urllib3's)
    [said] = [r for r in caplog.records if r.name.startswith("autotweak")]
    assert said.levelno == logging.INFO, "the study's close warns, once, of what it could not write"
    assert said.getMessage().startswith("trial records are not written while the tracker does not answer (")
    hung.set()


def test_a_write_under_way_for_seconds_has_the_tracker_asked_while_nobody_waits_for_it(
    monkeypatch: pytest.MonkeyPatch,
):
    """A trial of an hour after its tracker died: told as its previous record hangs, not at its end."""
    monkeypatch.setattr(autotweak.engine._writer, "_STALLED_S", 0.2)
    hung, told = threading.Event(), threading.Event()
    down = "tracking URI http://127.0.0.1:1: no MLflow server answers (connection refused)"
    said: list[str | None] = []
    writer = RecordWriter(unreachable=lambda: down, on_change=lambda d: (said.append(d), told.set()))
    try:
        writer.submit(hung.wait, "a record waiting out MLflow's retries")  # then the trial runs on
        assert told.wait(10), "nothing waits for the write: the writer itself must ask"
        assert said == [down]
        writer.submit(lambda: said.append("written"), "the next record")  # known down: dropped
        assert writer.dropped == 2 and writer.lost == down
    finally:
        hung.set()
        writer.close()
    assert said == [down]


def test_a_write_that_is_only_slow_tells_nobody(monkeypatch: pytest.MonkeyPatch):
    """A slow server that still answers is asked, and nothing is said or dropped."""
    monkeypatch.setattr(autotweak.engine._writer, "_STALLED_S", 0.05)
    asked: list[int] = []
    said: list[str | None] = []
    written: list[str] = []

    def unreachable() -> None:
        asked.append(1)

    writer = RecordWriter(unreachable=unreachable, on_change=said.append)
    writer.submit(lambda: (time.sleep(0.3), written.append("slow")), "a slow record")
    writer.submit(lambda: written.append("next"), "the next record")
    writer.close()
    assert written == ["slow", "next"] and asked and said == [] and writer.dropped == 0


def test_a_call_kept_waiting_by_a_tracker_that_does_not_answer_is_dropped_at_once():
    """A trial's curve flush (or its record as it stops) waits for its write: not for MLflow's retries."""
    hung = threading.Event()
    late = threading.Timer(60, hung.set)  # the old code waited until then, for MLflow's 4 minutes
    late.start()
    writer = RecordWriter(
        unreachable=lambda: "tracking URI http://127.0.0.1:1: no MLflow server answers (connection refused)"
    )
    try:
        flushed = writer.call(lambda: hung.wait() and "written late")
        with pytest.raises(TrackingError, match="no MLflow server answers"):
            flushed()
        with pytest.raises(TrackingError, match="no MLflow server answers"):
            writer.call(lambda: "not tried")()  # said down already: dropped, not queued
    finally:
        late.cancel()
        hung.set()
        writer.close()


def test_writes_left_queued_at_exit_are_done_before_the_interpreter_ends(tmp_path):
    done = tmp_path / "done"
    script = (
        "import time\n"
        "from autotweak.engine._writer import RecordWriter\n"
        "writer = RecordWriter()\n"
        "writer.submit(lambda: time.sleep(0.5), 'a slow write')\n"
        f"writer.submit(lambda: open({str(done)!r}, 'w').close(), 'the last write')\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert done.exists(), "a script that never closed its study still gets its records"
