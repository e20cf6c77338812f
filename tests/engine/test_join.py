"""``autotweak worker NAME --workers N`` (``join``), ``optimize --workers N``: held as workers die."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator

import pytest
from optuna.trial import TrialState

import autotweak
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
