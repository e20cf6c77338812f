"""A study rides out a storage outage: at a worker's start, in the monitor, and inside a trial.

The PostgreSQL tests stop the server for a few seconds and start it again, as a restart or
a failover does; the others break one storage call of an embedded SQLite store on cue.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

import autotweak
from autotweak._quiet import quiet_optuna
from autotweak.engine import _opening
from autotweak.engine._contact import CONTACT
from autotweak.engine._executors import InlineExecutor
from autotweak.engine._join import join
from autotweak.engine._monitor import Monitor
from autotweak.engine._retries import requeue
from autotweak.engine._session import Outcome, TrialSession, WorkerContext
from autotweak.engine._stale import LOST_WORKER, StaleSweeper, fail_stale
from autotweak.engine._storage import libpq_timeouts, make_storage, rdb_backend
from autotweak.engine._study import ATTR, create_study, state_of
from autotweak.engine._study_sessions import open_session, sessions_of
from autotweak.engine._unreachable import StorageUnreachableError, heartbeat, retrying
from autotweak.engine._worker import WorkerResult, run_worker
from autotweak.exceptions import AutotweakError
from autotweak.spec import Experiment
from autotweak.testing.services import Postgres
from autotweak.tracking import NullTracker
from tests.conftest import base_spec
from tests.helpers import drop_studies, silent_postgres

UNREACHABLE = "unreachable while"


@pytest.fixture
def pg_url(pg: Postgres) -> Iterator[str]:
    """The Optuna database; the studies a test made there are deleted after it."""
    url = pg.url("optuna")
    yield url
    drop_studies(pg, url)


def _context(exp: Experiment, url: str, home: Path) -> WorkerContext:
    return WorkerContext(
        experiment=exp, storage_url=url, tracking_uri=None, study_run_id=None, home=str(home)
    )


def _spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "budget": {"trials": 3},
        "execution": {"workers": 1, "heartbeat_interval": 1, "grace_period": 20},
    }
    return spec | overrides


class _Background:
    """Runs ``func`` in a thread and keeps its result or its exception."""

    def __init__(self, func: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.result = func()
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def wait_for(self, said: Callable[[], bool], timeout: float = 30) -> None:
        """Until ``said()`` holds or the thread has ended (an old worker fails at once)."""
        deadline = time.monotonic() + timeout
        while not said() and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)

    def join(self, timeout: float = 60) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "still running"
        if self.error is not None:
            raise self.error
        return self.result


def test_a_worker_starting_while_postgresql_restarts_waits_for_it(home, make_experiment, pg, pg_url, caplog):
    caplog.set_level(logging.WARNING, logger="autotweak")
    exp = make_experiment(name="start-outage", storage=pg_url, **_spec())
    create_study(exp, make_storage(pg_url))
    pg.ctl("stop", "-m", "fast")
    try:
        worker = _Background(lambda: run_worker(_context(exp, pg_url, home)))
        worker.wait_for(lambda: UNREACHABLE in caplog.text)
    finally:
        pg.ctl("start")
    result: WorkerResult = worker.join()
    assert result.trials == 3 and result.stop_reason == "trials"
    assert "unreachable while opening the storage" in caplog.text
    assert f"the storage {pg_url} is unreachable" in caplog.text
    study = optuna.load_study(study_name="start-outage", storage=pg_url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3


def test_a_joining_worker_starting_while_postgresql_restarts_waits_for_it(
    home, make_experiment, pg, pg_url, caplog
):
    """``autotweak worker NAME --session ID``, as a spot launcher starts it: it waits for the server."""
    caplog.set_level(logging.WARNING, logger="autotweak")
    exp = make_experiment(name="join-outage", storage=pg_url, **_spec())
    create_study(exp, make_storage(pg_url))
    pg.ctl("stop", "-m", "fast")
    try:
        worker = _Background(lambda: join("join-outage", storage=pg_url, session="launcher"))
        worker.wait_for(lambda: UNREACHABLE in caplog.text)
    finally:
        pg.ctl("start")
    (result,) = worker.join()
    assert result.trials == 3 and "unreachable while opening the storage" in caplog.text
    study = optuna.load_study(study_name="join-outage", storage=pg_url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3


class _RestartingExecutor(InlineExecutor):
    """The inline executor; reading its ``meta`` for the session's record stops PostgreSQL for 2 s, once."""

    def __init__(self, pg: Postgres) -> None:
        self.pg = pg
        self.restarts: list[threading.Timer] = []

    @property
    def meta(self) -> dict[str, Any]:
        if not self.restarts:
            self.pg.ctl("stop", "-m", "fast")
            self.restarts.append(threading.Timer(2.0, self.pg.ctl, args=("start",)))
            self.restarts[0].start()
        return super().meta


def test_a_worker_joining_by_hand_records_its_session_through_a_postgresql_restart(
    home, make_experiment, pg, pg_url, monkeypatch, caplog
):
    """``autotweak worker NAME``: its session's record, the last write of its opening, waits for the server.

    It ended in a raw OperationalError, the study open and no trial run.
    """
    caplog.set_level(logging.WARNING, logger="autotweak")
    exp = make_experiment(name="join-session-outage", storage=pg_url, **_spec())
    create_study(exp, make_storage(pg_url))
    runner = _RestartingExecutor(pg)
    monkeypatch.setattr("autotweak.engine._join.executor_for", lambda workers: runner)
    try:
        (result,) = join("join-session-outage", storage=pg_url)
    finally:
        runner.restarts[0].join()
    assert result.trials == 3 and "unreachable while recording the session" in caplog.text
    study = optuna.load_study(study_name="join-session-outage", storage=pg_url)
    assert [s.kind for s in sessions_of(study.user_attrs)] == ["worker"]


def test_a_session_whose_record_was_written_but_not_acknowledged_is_recorded_once(pg, pg_url):
    """The connection drops after PostgreSQL committed the session's record: the retry writes the same one."""
    storage = make_storage(pg_url)
    study = optuna.create_study(study_name="session-once", storage=storage)
    real = storage.set_study_user_attr
    dropped: list[int] = []

    def committed_then_dropped(*args: Any) -> None:
        real(*args)
        if not dropped:
            dropped.append(1)
            raise sqlalchemy.exc.OperationalError("COMMIT", {}, Exception("server closed the connection"))

    storage.set_study_user_attr = committed_then_dropped  # type: ignore[method-assign]
    session = open_session(study, "worker", {"name": "inline", "workers": 1}, store=pg_url)
    assert dropped, "the first write's answer was lost"
    stored = optuna.load_study(study_name="session-once", storage=pg_url)
    assert [s.id for s in sessions_of(stored.user_attrs)] == [session]


def _restart_in_reconcile(pg: Postgres, monkeypatch: pytest.MonkeyPatch, call: int) -> list[threading.Timer]:
    """PostgreSQL stopped for 2 s as the study's ``call``-th reconcile (1: its opening) begins to read."""
    real = _opening.reconcile
    calls: list[int] = []
    restarts: list[threading.Timer] = []

    def reconcile_in_a_restart(*args: Any, **kwargs: Any) -> int:
        calls.append(1)
        if len(calls) == call:
            pg.ctl("stop", "-m", "fast")
            restarts.append(threading.Timer(2.0, pg.ctl, args=("start",)))
            restarts[0].start()
        return real(*args, **kwargs)

    monkeypatch.setattr(_opening, "reconcile", reconcile_in_a_restart)
    return restarts


def test_a_resume_reads_its_trials_through_a_postgresql_restart(home, pg, pg_url, monkeypatch):
    """A resume's opening, which reads every trial to bring the records in line, waits for the server."""
    spec = base_spec(name="resume-outage", storage=pg_url, budget={"trials": 2})
    autotweak.optimize(spec)
    restarts = _restart_in_reconcile(pg, monkeypatch, call=1)
    result = autotweak.optimize(spec | {"budget": {"trials": 3}}, resume=True)
    restarts[0].join()
    assert result.trials_run == 1 and result.trials_counted == 3


def test_a_study_closes_through_a_postgresql_restart(home, pg, pg_url, monkeypatch):
    """Its close reads every trial to bring the records in line, then sums the study up."""
    restarts = _restart_in_reconcile(pg, monkeypatch, call=2)
    result = autotweak.optimize(base_spec(name="close-outage", storage=pg_url, budget={"trials": 2}))
    restarts[0].join()
    assert result.trials_run == 2 and result.summary.counts["complete"] == 2


def test_the_monitor_waits_through_a_postgresql_restart(make_experiment, pg, pg_url, caplog):
    caplog.set_level(logging.WARNING, logger="autotweak")
    exp = make_experiment(name="monitor-outage", storage=pg_url)
    study = create_study(exp, make_storage(pg_url))
    seen: list[int] = []
    monitor = Monitor(study, exp, lambda progress: seen.append(progress.done))
    pg.ctl("stop", "-m", "fast")
    try:
        poll = _Background(monitor.poll)
        poll.wait_for(lambda: UNREACHABLE in caplog.text)
    finally:
        pg.ctl("start")
    assert poll.join().done == 0 and seen == [0]
    assert "unreachable while reading the study's progress" in caplog.text


def test_a_trial_reporting_while_postgresql_is_down_survives_it(home, make_experiment, pg, pg_url):
    exp = make_experiment(name="report-outage", storage=pg_url, **_spec())
    create_study(exp, make_storage(pg_url))
    outage: list[threading.Timer] = []

    def train(config: dict[str, Any], trial: Any) -> float:
        for step in range(1, 4):
            if trial.number == 1 and step == 2 and not outage:
                pg.ctl("stop", "-m", "fast")  # the next report finds no server, for 3 s
                outage.append(threading.Timer(3.0, pg.ctl, args=("start",)))
                outage[0].start()
            trial.report(config["x"] + step, step)
        return float(config["x"])

    result = run_worker(_context(exp, pg_url, home), train)
    outage[0].join()
    assert result.trials == 3 and not result.crashed
    study = optuna.load_study(study_name="report-outage", storage=pg_url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert study.trials[1].intermediate_values.keys() == {1, 2, 3}


def test_a_connection_dropped_inside_one_read_is_retried(pg, pg_url, make_experiment, monkeypatch):
    """PostgreSQL restarting inside one of Optuna's reads (as a pruner's reads the trials).

    Optuna runs the failed query again in the same session, which raises PendingRollbackError
    while it handles the OperationalError: still a dropped connection, not invalid data.
    """
    from optuna.storages._rdb import models

    exp = make_experiment(name="read-outage", storage=pg_url)
    storage = make_storage(pg_url)
    study = create_study(exp, storage)
    find = models.StudyModel.find_or_raise_by_id
    killer = sqlalchemy.create_engine(pg_url)
    dropped: list[int] = []

    def find_then_drop(study_id: int, session: Any, **kwargs: Any) -> Any:
        found = find(study_id, session, **kwargs)
        if not dropped:  # the connection goes away between this query and the next one
            dropped.append(session.execute(sqlalchemy.text("SELECT pg_backend_pid()")).scalar())
            with killer.begin() as conn:
                conn.execute(sqlalchemy.text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped[0]})
        return found

    monkeypatch.setattr(models.StudyModel, "find_or_raise_by_id", find_then_drop)
    trials = retrying(lambda: storage.get_all_trials(study._study_id), "reading the trials", timeout=20)
    killer.dispose()
    assert dropped and [t.state for t in trials] == [TrialState.WAITING]


def test_a_server_that_never_answers_is_an_unreachable_storage_not_a_hang(monkeypatch):
    """As behind a network partition that drops packets: libpq alone would wait for ever."""
    monkeypatch.setattr("autotweak.engine._storage.CONNECT_TIMEOUT", 2)
    with silent_postgres() as url:
        opening = _Background(lambda: retrying(lambda: make_storage(url), "opening the storage", timeout=1))
        opening.thread.join(120)  # each attempt waits for CONNECT_TIMEOUT; without one, for ever
        assert not opening.thread.is_alive(), "still waiting for the server's answer"
    assert isinstance(opening.error, StorageUnreachableError), opening.error
    assert "while opening the storage" in str(opening.error) and "timeout expired" in str(opening.error)


def test_the_urls_own_timeouts_win(monkeypatch):
    url = "postgresql+psycopg2://autotweak@db/optuna"
    assert libpq_timeouts(url) == {
        "connect_timeout": 10,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": 30_000,
    }
    own = libpq_timeouts(f"{url}?connect_timeout=3&keepalives_idle=60")
    assert "connect_timeout" not in own and "keepalives_idle" not in own and own["keepalives_count"] == 3
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "30")  # libpq's own variable
    assert "connect_timeout" not in libpq_timeouts(url)
    assert libpq_timeouts("sqlite:///optuna.db") == {} == libpq_timeouts("mysql+pymysql://db/optuna")


class _Flaky:
    """Makes a storage method fail as a dropped connection does, once armed, for ``seconds``.

    The error is the one Optuna raises for any database error met in a commit, which
    blames invalid data ("e.g. exceeding max length"). It is armed once; telling a trial
    (a write to another table) ends the outage early.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.armed = threading.Event()
        self.since: float | None = None
        self.failures = 0

    def arm(self) -> None:
        if self.since is None:
            self.since = time.monotonic()
            self.armed.set()

    def wrap(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if self.armed.is_set() and time.monotonic() - (self.since or 0.0) < self.seconds:
                self.failures += 1
                try:
                    raise sqlalchemy.exc.OperationalError(
                        "UPDATE", {}, Exception("server closed the connection")
                    )
                except sqlalchemy.exc.OperationalError as exc:
                    raise optuna.exceptions.StorageInternalError(
                        "An exception is raised during the commit. This typically happens due to "
                        "invalid data in the commit, e.g. exceeding max length. "
                    ) from exc
            return method(*args, **kwargs)

        return call

    def ending(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.armed.clear()
            return method(*args, **kwargs)

        return call


@pytest.fixture
def flaky_reports(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], _Flaky]:
    """``flaky_reports(seconds)``: a worker's ``report`` writes fail for that long once armed."""

    def make(seconds: float) -> _Flaky:
        flaky = _Flaky(seconds)
        real = make_storage

        def patched(url: str, **kwargs: Any) -> Any:
            storage = real(url, **kwargs)
            storage.set_trial_intermediate_value = flaky.wrap(storage.set_trial_intermediate_value)
            storage.set_trial_state_values = flaky.ending(storage.set_trial_state_values)
            return storage

        monkeypatch.setattr("autotweak.engine._worker.make_storage", patched)
        return flaky

    return make


def _reporting(flaky: _Flaky) -> Callable[[dict[str, Any], Any], float]:
    """An objective whose first trial but one meets the outage at its second report."""

    def train(config: dict[str, Any], trial: Any) -> float:
        for step in range(1, 4):
            if trial.number == 1 and step == 2:
                flaky.arm()
            trial.report(config["x"] + step, step)
        return float(config["x"])

    return train


def test_a_report_is_retried_through_a_short_outage(home, make_experiment, flaky_reports):
    url = f"sqlite:///{home / 'optuna.db'}"
    exp = make_experiment(name="short-outage", storage=url, **_spec())
    create_study(exp, make_storage(url))
    flaky = flaky_reports(1.2)
    result = run_worker(_context(exp, url, home), _reporting(flaky))
    assert flaky.failures >= 2 and result.trials == 3
    study = optuna.load_study(study_name="short-outage", storage=url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert study.trials[1].intermediate_values.keys() == {1, 2, 3}


def test_a_trial_whose_storage_stays_down_is_queued_again_not_failed(
    home, make_experiment, flaky_reports, monkeypatch
):
    monkeypatch.setattr("autotweak.engine._unreachable.RETRY_TIMEOUT", 1.0)
    url = f"sqlite:///{home / 'optuna.db'}"
    exp = make_experiment(name="long-outage", storage=url, **_spec())
    create_study(exp, make_storage(url))
    flaky = flaky_reports(float("inf"))  # until the trial is told
    result = run_worker(_context(exp, url, home), _reporting(flaky))
    assert not result.crashed
    study = optuna.load_study(study_name="long-outage", storage=url)
    lost = study.trials[1]
    failure = lost.user_attrs[ATTR.FAILURE]
    assert lost.state == TrialState.FAIL and failure.startswith(f"lost: the storage {url} was unreachable")
    assert "while reporting step 2 of trial 1" in failure and "queued to run again" in failure
    assert state_of(lost) == "preempted", "counted apart from the objective's failures"
    assert "exceeding max length" not in failure, "Optuna's guess at the cause is not repeated"
    retries = [t for t in study.trials if t.user_attrs.get(ATTR.RETRY_OF) == 1]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    counted = [t for t in study.trials if ATTR.RETRY_OF not in t.user_attrs]
    assert len(counted) == 3, "the lost attempt does not count against the budget"
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 3


def test_a_preempted_trial_queued_again_by_a_stale_sweep_is_not_queued_twice(home, make_experiment):
    exp = make_experiment(name="swept")
    study = create_study(exp, make_storage("memory"))
    study.ask()  # the baseline
    session = TrialSession(_context(exp, "memory", home), study, NullTracker(), seed=0)
    handle = session.begin(study.ask())
    # Its heartbeat stopped while the storage was down: another worker's sweep queued it again.
    requeue(study, handle.number, handle.params, {}, max_retries=3)
    told = session.finish(handle, Outcome("preempted", None, "lost: the storage was unreachable"), 1.0)
    assert told.state == "preempted"
    retries = [t for t in study.trials if t.user_attrs.get(ATTR.RETRY_OF) == handle.number]
    assert len(retries) == 1


def test_why_the_pruner_stopped_a_trial_is_read_through_a_short_outage(home, make_experiment):
    exp = make_experiment(name="pruned-outage")
    study = create_study(exp, make_storage("memory"))
    study.ask()  # the baseline
    session = TrialSession(_context(exp, "memory", home), study, NullTracker(), seed=0)
    trial = study.ask()
    trial.set_user_attr("autotweak.pruner.rule", "MedianPruner")
    flaky = _Flaky(1.2)
    study._storage.get_trial = flaky.wrap(study._storage.get_trial)  # type: ignore[method-assign]
    flaky.arm()
    assert session._pruner_attrs(trial) == {"autotweak.pruner.rule": "MedianPruner"}
    assert flaky.failures >= 2


def test_a_bad_write_is_not_retried_and_a_dropped_connection_names_the_storage():
    calls: list[int] = []

    def bad_data() -> None:
        calls.append(1)
        try:
            raise sqlalchemy.exc.DataError(
                "INSERT", {}, Exception("value too long for type character varying(2048)")
            )
        except sqlalchemy.exc.DataError as exc:
            raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from exc

    with pytest.raises(optuna.exceptions.StorageInternalError):
        retrying(bad_data, "writing", timeout=1.0)
    assert calls == [1], "invalid data is no outage"

    def refused() -> None:
        raise sqlalchemy.exc.OperationalError(
            "SELECT 1", {}, Exception("connection refused\nIs the server running?")
        )

    with pytest.raises(AutotweakError) as caught:
        retrying(refused, "loading the study", timeout=0.6, store="postgresql://ann:secret@db:5432/optuna")
    message = str(caught.value)
    assert message.startswith("the storage postgresql://ann:***@db:5432/optuna was unreachable for ")
    assert message.endswith(" s while loading the study (Exception: connection refused)")


def test_an_outage_is_said_when_met_once_a_while_as_it_lasts_and_when_it_ends(monkeypatch, caplog):
    """Not a line per retry (about sixteen for a two-minute restart)."""
    caplog.set_level(logging.WARNING, logger="autotweak")
    monkeypatch.setattr("autotweak.engine._unreachable.STILL_UNREACHABLE_EVERY", 1.0)
    flaky = _Flaky(3.0)  # tried at 0, 0.5, 1.5 and 3.5 s
    flaky.arm()
    retrying(flaky.wrap(lambda: None), "reading the trials", timeout=20, store="sqlite:///optuna.db")
    assert flaky.failures == 3
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 3, said
    first, still, back = said
    assert first == (
        "the storage sqlite:///optuna.db is unreachable while reading the trials (Exception); "
        "retrying for up to 20 s"
    )
    assert still.startswith("the storage sqlite:///optuna.db is still unreachable after ")
    assert still.endswith(" s while reading the trials (Exception); retrying")
    assert back.startswith("the storage sqlite:///optuna.db answers again (unreachable for ")
    assert back.endswith(" s while reading the trials)")


@pytest.mark.parametrize("database", ["nodb", "optuna"], ids=["database", "user"])
def test_a_server_that_refuses_the_url_is_not_retried(pg, database):
    """A database or user that does not exist is no outage: waiting two minutes does not make it."""
    url = pg.url(database) if database == "nodb" else pg.url("optuna").replace("autotweak@", "nobody@")
    with pytest.raises(sqlalchemy.exc.OperationalError, match="does not exist"):
        retrying(lambda: make_storage(url), "opening the storage", timeout=30)


def test_a_retry_keeps_what_its_trial_was_run_for():
    """The baseline's mark and an ablation's: a retried ablation trial is still not part of the search."""
    from autotweak.engine._retries import requeue
    from autotweak.engine._study import ATTR

    study = optuna.create_study()
    trial = study.ask()
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    requeue(study, trial.number, {}, {ATTR.ABLATION: True, ATTR.BASELINE: True}, max_retries=3)
    (queued,) = [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]
    assert queued.user_attrs[ATTR.ABLATION] is True and queued.user_attrs[ATTR.BASELINE] is True


BEATING = """
import sys, time
from autotweak.engine._storage import make_storage
from autotweak.engine._unreachable import heartbeat

url, trial_id = sys.argv[1], int(sys.argv[2])
storage = make_storage(url, heartbeat_interval=1, grace_period=3, check_schema=False)
with heartbeat(storage, trial_id, 1):
    time.sleep(600)
"""


def _beating(url: str, trial_id: int) -> subprocess.Popen[bytes]:
    """A process of its own that writes the heartbeat of ``trial_id`` every second, as a worker does."""
    return subprocess.Popen([sys.executable, "-c", BEATING, url, str(trial_id)])


def _has_beaten(storage: Any, trial_id: int) -> bool:
    with storage.engine.connect() as conn:
        sql = "SELECT 1 FROM trial_heartbeats WHERE trial_id = :id"
        return conn.execute(sqlalchemy.text(sql), {"id": trial_id}).first() is not None


def test_an_outage_longer_than_the_grace_period_fails_no_live_trial_but_a_dead_ones(
    make_experiment, pg, pg_url
):
    """No worker can write a heartbeat while PostgreSQL is down: right after it, every running
    trial's is older than the grace period. A sweep then fails only the trial whose worker
    died meanwhile, once the storage has answered for a grace period (the live one has beaten)."""
    exp = make_experiment(name="beats-outage", storage=pg_url)  # heartbeat 1 s, grace 3 s
    storage = make_storage(pg_url, heartbeat_interval=1, grace_period=3)
    study = create_study(exp, storage)
    with quiet_optuna():  # Optuna warns of heartbeats outside its own optimize
        own, live, dead = (study.ask()._trial_id for _ in range(3))
    workers = {tid: _beating(pg_url, tid) for tid in (live, dead)}
    sweep = StaleSweeper(study, every=0)
    try:
        with heartbeat(storage, own, 1):  # this worker's own trial, whose heartbeat meets the outage
            deadline = time.monotonic() + 30
            while not all(_has_beaten(rdb_backend(storage), tid) for tid in workers):
                assert time.monotonic() < deadline, "the workers never beat"
                time.sleep(0.1)
            pg.ctl("stop", "-m", "fast")
            workers[dead].kill()  # dies while the storage is down
            workers[dead].wait()
            time.sleep(4.5)  # longer than the grace period
            pg.ctl("start")
            sweep()  # at once, as a worker whose retried step went through does
            states = {tid: storage.get_trial(tid).state for tid in (own, live, dead)}
            assert set(states.values()) == {TrialState.RUNNING}, "nothing failed before anyone could beat"
            deadline = time.monotonic() + 30
            while storage.get_trial(dead).state == TrialState.RUNNING:
                assert time.monotonic() < deadline, "the dead worker's trial was never failed"
                time.sleep(0.2)
                sweep()
            assert storage.get_trial(dead).user_attrs[ATTR.FAILURE] == LOST_WORKER
            assert storage.get_trial(live).state == TrialState.RUNNING, "the live worker's trial runs on"
            assert storage.get_trial(own).state == TrialState.RUNNING
    finally:
        for worker in workers.values():
            worker.kill()
            worker.wait()


def test_a_sweep_after_a_retried_storage_error_waits_until_the_storage_has_answered_a_grace_period(
    home, make_experiment
):
    """A worker waiting for others' trials meets the outage in its own retried reads, not in a heartbeat."""
    url = f"sqlite:///{home / 'optuna.db'}"
    storage = make_storage(url, heartbeat_interval=1, grace_period=2)
    study = create_study(make_experiment(name="held-sweep", storage=url), storage)
    with quiet_optuna():
        trial_id = study.ask()._trial_id
    storage.record_heartbeat(trial_id)
    time.sleep(2.5)  # its worker is gone: the heartbeat is older than the grace period
    flaky = _Flaky(0.3)
    flaky.arm()
    retrying(flaky.wrap(lambda: None), "reading the budget", timeout=10)
    assert flaky.failures >= 1
    fail_stale(study)
    assert storage.get_trial(trial_id).state == TrialState.RUNNING, "not judged right after the outage"
    deadline = time.monotonic() + 30
    while storage.get_trial(trial_id).state == TrialState.RUNNING:
        assert time.monotonic() < deadline, "a dead worker's trial must still be failed"
        time.sleep(0.2)
        fail_stale(study)
    assert storage.get_trial(trial_id).user_attrs[ATTR.FAILURE] == LOST_WORKER


def test_a_process_started_right_after_an_outage_fails_no_live_trial(home, make_experiment):
    """A resume or a new worker that starts just after an outage it did not see: every running trial's
    heartbeat is old, the live workers' too, until they beat again. Only a trial that stays silent
    while another beats is failed in its first grace period."""
    url = f"sqlite:///{home / 'optuna.db'}"
    storage = make_storage(url, heartbeat_interval=1, grace_period=2)
    study = create_study(make_experiment(name="after-outage", storage=url), storage)
    with quiet_optuna():
        live, dead = (study.ask()._trial_id for _ in range(2))
    for trial_id in (live, dead):
        storage.record_heartbeat(trial_id)
    time.sleep(5.5)  # nobody could beat, for over twice the grace period (SQLite keeps seconds)
    CONTACT.__init__()  # type: ignore[misc]  # this process starts now
    fail_stale(study)
    assert {storage.get_trial(t).state for t in (live, dead)} == {TrialState.RUNNING}, "no one beats yet"
    storage.record_heartbeat(live)  # its worker beats again; the other's is gone
    fail_stale(study)
    assert storage.get_trial(dead).user_attrs[ATTR.FAILURE] == LOST_WORKER
    assert storage.get_trial(live).state == TrialState.RUNNING
