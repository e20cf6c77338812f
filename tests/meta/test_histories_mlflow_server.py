"""Histories from a real MLflow tracking server: curves read several at a time, errors per run."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

import autotweak.meta._mlflow_curves as curves_module
from autotweak.meta import read_mlflow
from autotweak.space import SearchSpace
from autotweak.testing.services import MlflowServer

SPACE = SearchSpace.from_dict({"x": {"type": "float", "low": -5.0, "high": 5.0}})


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A tracking server on a SQLite store of the module's own: its URL and its database file."""
    folder = tmp_path_factory.mktemp("served")
    with MlflowServer(f"sqlite:///{folder / 'served.db'}", folder / "artifacts") as server:
        yield server.url, folder / "served.db"


def _experiment(client: MlflowClient, name: str, runs: int) -> list[str]:
    """Runs with 5-step curves; every fifth out of the space, every seventh without a curve; their ids."""
    experiment_id = client.create_experiment(name)
    ids = []
    for i in range(runs):
        run_id = client.create_run(experiment_id).info.run_id
        x = 9.0 if i % 5 == 4 else (i % 10) - 4.5
        points = [Metric("acc", i / runs + step / 10, 1000 + step, step) for step in range(5)]
        metrics = [Metric("acc", i / runs, 1000, 0)] if i % 7 == 6 else points
        client.log_batch(run_id, metrics=metrics, params=[Param("x", str(x))])
        client.set_terminated(run_id)
        ids.append(run_id)
    return ids


def test_curves_read_several_at_a_time_give_what_one_at_a_time_gives(
    served: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = served
    client = MlflowClient(url)
    for name in ("alpha", "beta"):
        _experiment(client, name, 20)
    read = {}
    for threads in (1, 8):
        monkeypatch.setattr(curves_module, "THREADS", threads)
        read[threads] = read_mlflow(url, ["alpha", "beta"], metric="acc", space=SPACE)
    assert read[8] == read[1]
    tasks = read[8].tasks
    assert [t.name for t in tasks] == ["alpha", "beta"] and read[8].n_trials == 2 * 16
    listed = client.search_runs([client.get_experiment_by_name("alpha").experiment_id], max_results=1000)
    kept = [f"mlflow:{r.info.run_id}" for r in listed if float(r.data.params["x"]) < 5]
    assert [t.source for t in tasks[0].trials] == kept, "the runs' order, whatever order the answers came in"
    assert sum(len(t.curve) == 5 for t in tasks[0].trials) == 14
    assert dict(read[8].skipped.counts) == {"param 'x' out of range [-5.0, 5.0]": 8}


def test_a_server_error_on_one_run_skips_that_run_by_its_id(
    served: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, database = served
    ids = _experiment(MlflowClient(url), "gamma", 12)
    with sqlite3.connect(database) as db:  # a value the server cannot send: it answers 500
        db.execute("UPDATE metrics SET value = 'abc' WHERE run_uuid = ? AND step = 2", (ids[0],))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # not minutes of retries
    histories = read_mlflow(url, "gamma", metric="acc", space=SPACE)
    reason = "the run cannot be read: MlflowException"
    assert histories.skipped.counts[reason] == 1 and histories.skipped.examples[reason] == f"mlflow:{ids[0]}"
    assert histories.n_trials == 12 - 2 - 1
