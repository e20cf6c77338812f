"""A study rides out a storage outage: at a worker's start, in the monitor, and inside a trial.

The PostgreSQL tests stop the server for a few seconds and start it again, as a restart or
a failover does; the others break one storage call of an embedded SQLite store on cue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from autotweak.engine._monitor import Monitor
from autotweak.engine._session import WorkerContext
from autotweak.engine._storage import make_storage, retrying
from autotweak.engine._study import create_study
from autotweak.engine._worker import WorkerResult, run_worker
from autotweak.exceptions import AutotweakError
from autotweak.spec import Experiment
from autotweak.testing.services import Postgres, postgres

UNREACHABLE = "unreachable while"


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    """A PostgreSQL server of this module's own, which its tests stop and start."""
    with postgres() as server:
        server.create_database("optuna")
        yield server


@pytest.fixture
def pg_url(pg: Postgres) -> Iterator[str]:
    """The Optuna database; the studies a test made there are deleted after it."""
    url = pg.url("optuna")
    yield url
    if not _is_up(url):
        pg.ctl("start")
    storage = optuna.storages.RDBStorage(url)
    for study in storage.get_all_studies():
        storage.delete_study(study._study_id)
    storage.engine.dispose()


def _is_up(url: str) -> bool:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect():
            return True
    except sqlalchemy.exc.OperationalError:
        return False
    finally:
        engine.dispose()


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
