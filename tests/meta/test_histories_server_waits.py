"""A tracking server that stops answering while runs are read: the wait is said, with how to bound it."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

import autotweak.meta._mlflow_waits as waits_module
from autotweak.meta import read_mlflow
from autotweak.meta._mlflow_source import TrackingServerError
from autotweak.space import SearchSpace
from autotweak.testing.services import MlflowServer

SPACE = SearchSpace.from_dict({"x": {"type": "float", "low": -5.0, "high": 5.0}})


def _silent(port: int) -> socket.socket:
    """A port that takes connections and never answers, as a hung server's: the server's, once it is gone."""
    deadline = time.monotonic() + 30
    while True:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("127.0.0.1", port))
        except OSError:  # the server's worker, killed with it, may not have closed the port yet
            listener.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
            continue
        listener.listen(8)
        return listener


class _Said(logging.Handler):
    """Keeps the lines said, and does ``then`` at the first."""

    def __init__(self, then: Callable[[], None]) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.then = then

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        if len(self.lines) == 1:
            self.then()


@pytest.fixture
def said() -> Iterator[list[_Said]]:
    """The handler a test sets on the waits' logger, removed after it."""
    handlers: list[_Said] = []
    yield handlers
    for handler in handlers:
        logging.getLogger(waits_module.__name__).removeHandler(handler)


def test_a_server_that_stops_answering_mid_read_is_said_with_how_to_bound_the_wait(
    killable_mlflow: MlflowServer, monkeypatch: pytest.MonkeyPatch, said: list[_Said]
) -> None:
    """It was minutes of silence: MLflow's client retries a failing request 7 times, 120 s each try."""
    server = killable_mlflow
    client = MlflowClient(server.url)
    run_id = client.create_run(client.create_experiment("delta")).info.run_id
    client.log_batch(run_id, metrics=[Metric("acc", 0.5, 1000, 0)], params=[Param("x", "1.0")])
    monkeypatch.setattr(waits_module, "SAY_AFTER", 3600.0)  # a loaded machine's slow answers: not said
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")  # the test's bound, should the line not come
    hung: list[socket.socket] = []

    def listed(done: int, total: int) -> None:  # the runs are listed; the study's run is looked for next
        if done == 0:
            server.kill()
            hung.append(_silent(server.port))
            monkeypatch.setattr(waits_module, "SAY_AFTER", 0.5)

    # the wait ends once said: the hung server goes away, its connection is reset, the retry refused
    handler = _Said(lambda: hung[0].close())
    said.append(handler)
    logging.getLogger(waits_module.__name__).addHandler(handler)
    with pytest.raises(TrackingServerError) as caught:
        read_mlflow(server.url, "delta", metric="acc", space=SPACE, curves=False, progress=listed)
    assert handler.lines == [
        f"waiting on MLflow server {server.url} (looking for an autotweak study's run in experiment "
        "'delta'): no answer for 0.5 s; MLflow's client retries a failing request 1 time(s) "
        "(MLFLOW_HTTP_REQUEST_MAX_RETRIES=1) with pauses that grow between tries, each try waiting up to "
        "60 s for an answer (MLFLOW_HTTP_REQUEST_TIMEOUT=60): minutes where the server is down. Set "
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES=1 to give up on it in seconds."
    ]
    # MLflow's exception was the end: its URL, its retries and the connection's object, in a traceback
    assert str(caught.value) == (
        f"MLflow server {server.url} failed while looking for an autotweak study's run in experiment "
        "'delta': connection refused; start it, or pass the URI of one that runs as `tracking_uri`"
    )


def test_a_server_that_dies_while_curves_are_read_ends_the_reading_at_its_first_refusal(
    killable_mlflow: MlflowServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was every run's curve retried for MLflow's retry time, 8 at a time, each run then skipped."""
    server = killable_mlflow
    client = MlflowClient(server.url)
    experiment = client.create_experiment("echo")
    for i in range(25):
        run_id = client.create_run(experiment).info.run_id
        client.log_batch(run_id, metrics=[Metric("acc", 0.5, 1000, 0)], params=[Param("x", str(i / 10))])
        client.set_terminated(run_id, "FAILED" if i == 0 else "FINISHED")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    read: list[int] = []

    def progress(done: int, total: int) -> None:  # the failed run is counted before any curve is read
        read.append(done)
        if done == 1:
            server.kill()

    with pytest.raises(TrackingServerError) as caught:
        read_mlflow(server.url, "echo", metric="acc", space=SPACE, progress=progress)
    message = str(caught.value)
    assert message.startswith(
        f"MLflow server {server.url} failed while reading the history of metric 'acc' of run "
    )
    assert message.endswith(
        ": connection refused; start it, or pass the URI of one that runs as `tracking_uri`"
    )
    assert read == [0, 1], "no run's curve was skipped and counted read: the first refusal ended the reading"
