"""``autotweak worker NAME --workers N`` (``join``), ``optimize --workers N``: held as workers die."""

from __future__ import annotations

import functools
import gc
import os
from collections.abc import Iterator

import optuna
import pytest
import sqlalchemy
from optuna.storages import RDBStorage
from optuna.trial import TrialState

import autotweak
from autotweak.engine._budget import _lock_engine, ask_lock
from autotweak.engine._join import join
from autotweak.engine._storage import make_storage
from autotweak.engine._study import create_study
from autotweak.testing.services import Postgres
from tests.conftest import objective
from tests.helpers import drop_studies, load
from tests.objectives import tcp_connections


@pytest.fixture
def pg_url(pg: Postgres) -> Iterator[str]:
    """The Optuna database; the studies a test made there are deleted after it."""
    url = pg.url("optuna")
    yield url
    drop_studies(pg, url)


def _settled(pg: Postgres, url: str) -> int:
    """This process's connections to ``pg`` once nothing an earlier test left can close meanwhile.

    A storage an earlier test dropped without closing keeps its connections until the
    garbage collector frees it, and the ask lock's pool is the process's (a close empties
    it): either would make a count taken now fall during the call it measures.
    """
    gc.collect()
    _lock_engine(url).dispose()
    return tcp_connections(os.getpid(), pg.port)


@pytest.mark.timeout(240)
def test_a_joined_study_settles_a_dead_worker_process_on_the_one_storage_connection(
    home, make_experiment, pg, pg_url
):
    """Without ``--supervise`` too: the dead worker's trial is failed through the joining process's storage.

    On PostgreSQL every connection counts to ``max_connections``; a team runs many workers.
    As the first worker process died, its trial's settler opened a second storage of its own.
    """
    exp = make_experiment(
        name="join-connections",
        storage=pg_url,
        objective=objective("counts_connections"),  # the first trial exits; the others count ours
        base={"x": 0.0, "marker": str(home / "exited"), "pid": os.getpid(), "port": pg.port},
        budget={"trials": 4},
        execution={"workers": 2, "heartbeat_interval": 1, "grace_period": 600},  # no stale sweep
    )
    create_study(exp, make_storage(pg_url))
    held: list[int] = []  # this process's connections once the study and its stores are open
    connections = functools.partial(tcp_connections, os.getpid(), pg.port)
    results = join("join-connections", storage=pg_url, workers=2, on_ready=lambda: held.append(connections()))
    assert [r.replaced for r in results].count(True) == 1, "the worker process that exited was replaced"
    counted = [t.value for t in load(exp).trials if t.state == TrialState.COMPLETE]
    assert len(counted) == 4, "the budget is spent, the exited trial's retry too"
    assert held and max(counted) <= held[0], f"{held[0]} connection(s) as the workers started, then {counted}"


@pytest.mark.timeout(240)
def test_optimize_settles_dead_worker_processes_on_its_one_storage_connection(
    home, make_experiment, pg, pg_url
):
    """``optimize --workers N`` fails each dead worker process's trial through the storage it holds.

    As the first worker process died, its trial's settler opened a second storage (on
    PostgreSQL, connections held to the end against ``max_connections``) and tracker.
    """
    exp = make_experiment(
        name="optimize-connections",
        storage=pg_url,
        objective=objective("counts_connections"),  # the first three trials exit; the others count ours
        base={"x": 0.0, "marker": str(home / "exited"), "deaths": 3, "pid": os.getpid(), "port": pg.port},
        budget={"trials": 6},
        execution={"workers": 2, "heartbeat_interval": 1, "grace_period": 600, "max_retries": 3},
    )
    connections = functools.partial(tcp_connections, os.getpid(), pg.port)
    held: list[int] = []  # this process's connections as the workers start (the first progress report)
    result = autotweak.optimize(exp, on_progress=lambda progress: held or held.append(connections()))
    assert result.workers_replaced == 3, "each worker process that exited was replaced"
    counted = [t.value for t in load(exp).trials if t.state == TrialState.COMPLETE]
    assert len(counted) == 6, "the budget is spent, the exited trials' retries too"
    assert held and max(counted) <= held[0], f"{held[0]} connection(s) as the workers started, then {counted}"


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.timeout(240)
def test_join_returns_the_storage_connections_it_opened(home, make_experiment, pg, pg_url, workers):
    """A script that joins studies one after another holds no more PostgreSQL connections for it.

    Each ``join`` left its storage's pool (and, with one worker run in this process, that
    worker's) open to the end of the process: on PostgreSQL, connections against
    ``max_connections`` held by a process that runs no trial.
    """
    exp = make_experiment(
        name=f"join-returns-{workers}", storage=pg_url, budget={"trials": 2}, execution={"workers": workers}
    )
    made = make_storage(pg_url)
    assert isinstance(made, RDBStorage)
    create_study(exp, made)
    made.engine.dispose()
    connections = functools.partial(tcp_connections, os.getpid(), pg.port)
    before = _settled(pg, pg_url)
    results = join(exp.name, storage=pg_url, workers=workers)
    assert sum(r.trials for r in results) == 2
    assert connections() == before, "join closed what it opened"
    optuna.create_study(study_name=f"plain-{workers}", storage=made)  # no spec: join refuses it
    made.engine.dispose()
    with pytest.raises(autotweak.AutotweakError, match="not created by autotweak"):
        join(f"plain-{workers}", storage=pg_url, workers=workers)
    assert connections() == before, "also when it fails"


@pytest.mark.timeout(240)
def test_optimize_and_an_ask_tell_study_return_the_storage_connections_they_opened(
    home, make_experiment, pg, pg_url
):
    """As ``join`` does: a notebook that runs studies one after another holds no connection for them."""
    connections = functools.partial(tcp_connections, os.getpid(), pg.port)
    before = _settled(pg, pg_url)
    result = autotweak.optimize(
        make_experiment(name="optimize-returns", storage=pg_url, budget={"trials": 2})
    )
    assert result.trials_run == 2
    assert connections() == before, "optimize closed what it opened"
    with autotweak.Study(make_experiment(name="ask-tell-returns", storage=pg_url)) as study:
        trial = study.ask()
        assert trial is not None
        study.tell(trial, 1.0)
    assert connections() == before, "the study's close closed what it opened"


@pytest.mark.timeout(240)
def test_closing_one_of_two_studies_on_one_storage_leaves_the_others_ask_lock_open(
    home, make_experiment, pg, pg_url
):
    """Two ask/tell studies on one PostgreSQL URL in one process; the first closes as the second asks.

    The ask lock's pool is the process's, one per URL, and each close closed it: the second's
    held connection went back to a pool nobody closes (open until the garbage collector
    frees it), and its next ask connected anew.
    """
    connections = functools.partial(tcp_connections, os.getpid(), pg.port)
    before = _settled(pg, pg_url)
    connects: list[int] = []
    count_connect = lambda *_: connects.append(1)  # noqa: E731
    sqlalchemy.event.listen(_lock_engine(pg_url), "connect", count_connect)
    try:
        first, second = (
            autotweak.Study(make_experiment(name=name, storage=pg_url, budget={"trials": 4}))
            for name in ("first-of-two", "second-of-two")
        )
        for study in (first, second):
            trial = study.ask()
            assert trial is not None
            study.tell(trial, 1.0)
        with ask_lock(pg_url, second.experiment.name):  # as the second's ask, in a thread of its own
            first.close()
        told = []
        for _ in range(3):
            trial = second.ask()
            assert trial is not None
            second.tell(trial, 2.0)
            told.append(connections())
        second.close()
        after = connections()
    finally:
        sqlalchemy.event.remove(_lock_engine(pg_url), "connect", count_connect)
    assert second.summary.counts["complete"] == 4
    assert len(connects) == 1, f"the ask lock connected {len(connects)} times"
    assert after == before, (
        f"{before} connection(s) before, {told} as the second went on alone, {after} after"
    )


def test_the_tests_load_helper_holds_no_connection(home, make_experiment, pg, pg_url):
    """``tests.helpers.load`` reads a study to check; it left a pool open per call until garbage collected."""
    exp = make_experiment(name="loaded", storage=pg_url)
    made = make_storage(pg_url)
    assert isinstance(made, RDBStorage)
    create_study(exp, made)
    made.engine.dispose()
    before = _settled(pg, pg_url)
    study = load(exp)
    assert len(study.trials) == 1 and study.user_attrs, "it reads the study (its queued baseline)"
    assert tcp_connections(os.getpid(), pg.port) == before


class _CtrlC:
    """A Ctrl-C at the storage's first query after the ask lock is let go (the seed's session counted)."""

    def __init__(self, lock: sqlalchemy.Engine) -> None:
        self.lock = lock
        self.armed = False
        self.landed = 0

    def let_go(self, *_: object) -> None:
        self.armed = True

    def query(self, conn: sqlalchemy.Connection, *_: object) -> None:
        if self.armed and conn.engine is not self.lock and conn.engine.url == self.lock.url:
            self.armed = False
            self.landed += 1
            raise KeyboardInterrupt


@pytest.mark.timeout(240)
def test_an_ask_tell_study_that_fails_to_open_holds_no_connection(home, make_experiment, pg, pg_url):
    """A notebook cell that fails to open a study, run again and again, leaves no connection open.

    Each failure after the study's storage was made (a name that exists, a resume with
    another setup, a Ctrl-C as the study loads) left its pool open until the garbage
    collector freed it (never, while the notebook keeps the last traceback); one as the
    study loaded also left the ask lock's pool open, counted by no study.
    """
    with autotweak.Study(make_experiment(name="opened", storage=pg_url)):
        pass
    other = make_experiment(name="opened", storage=pg_url, metric={"name": "loss", "direction": "maximize"})
    failures = [
        (lambda: autotweak.Study(make_experiment(name="opened", storage=pg_url)), "already exists"),
        (lambda: autotweak.Study(other, resume=True), "different setup"),
        (lambda: autotweak.Study(make_experiment(name="missing", storage=pg_url), resume=True), "no study"),
    ]
    before = _settled(pg, pg_url)
    kept = []  # as a notebook keeps its last traceback, and the frames it holds
    for make, says in failures * 2:
        with pytest.raises(autotweak.AutotweakError, match=says) as raised:
            make()
        kept.append(raised)
    after_errors = tcp_connections(os.getpid(), pg.port)
    ctrl_c = _CtrlC(_lock_engine(pg_url))
    sqlalchemy.event.listen(ctrl_c.lock, "commit", ctrl_c.let_go)
    sqlalchemy.event.listen(sqlalchemy.Engine, "before_cursor_execute", ctrl_c.query)
    try:
        for _ in range(2):
            with pytest.raises(KeyboardInterrupt) as raised:
                autotweak.Study(make_experiment(name="interrupted", storage=pg_url))
            kept.append(raised)
    finally:
        sqlalchemy.event.remove(sqlalchemy.Engine, "before_cursor_execute", ctrl_c.query)
        sqlalchemy.event.remove(ctrl_c.lock, "commit", ctrl_c.let_go)
    assert ctrl_c.landed == 2, "each Ctrl-C landed as the study loaded"
    after = tcp_connections(os.getpid(), pg.port)
    assert (after_errors, after) == (before, before), f"{before} connection(s) before"


@pytest.mark.timeout(240)
def test_optimize_and_join_run_to_their_end_under_an_open_ask_tell_study(home, make_experiment, pg, pg_url):
    """A notebook's ask/tell study stays open while ``optimize`` and ``join`` run other studies on its URL.

    Each of them leaves the ask lock's pool of the process to the last study open on the URL:
    the open study asks on its connection, and once it is closed the process holds none.
    """
    connections = functools.partial(tcp_connections, os.getpid(), pg.port)
    joined = make_experiment(name="joined-under", storage=pg_url, budget={"trials": 2})
    made = make_storage(pg_url)
    assert isinstance(made, RDBStorage)
    create_study(joined, made)
    made.engine.dispose()
    before = _settled(pg, pg_url)
    connects: list[int] = []
    count_connect = lambda *_: connects.append(1)  # noqa: E731
    sqlalchemy.event.listen(_lock_engine(pg_url), "connect", count_connect)
    study = autotweak.Study(make_experiment(name="open-under", storage=pg_url, budget={"trials": 5}))
    told = []
    runs = [
        lambda: autotweak.optimize(
            make_experiment(name="optimized-under", storage=pg_url, budget={"trials": 2})
        ),
        lambda: join(joined.name, storage=pg_url, workers=1),
        lambda: None,
    ]
    try:
        for run in runs:
            trial = study.ask()
            assert trial is not None
            study.tell(trial, 1.0)
            told.append(connections())
            run()
    finally:
        summary = study.close()
        sqlalchemy.event.remove(_lock_engine(pg_url), "connect", count_connect)
    assert len(connects) == 1, f"the ask lock connected {len(connects)} times: closed under the open study"
    assert summary.counts["complete"] == 3
    assert load(make_experiment(name="optimized-under", storage=pg_url)).user_attrs, "optimize ran"
    assert sum(t.state == TrialState.COMPLETE for t in load(joined).trials) == 2, "join ran"
    assert connections() == before, f"{before} connection(s) before, {told} as the study asked"
