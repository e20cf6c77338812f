"""The test services' MLflow servers: a server that cannot start says why; none outlives the tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from autotweak.testing import services
from autotweak.testing._ports import group_members
from autotweak.testing.services import MlflowServer


def _failed_start(
    tmp_path: Path, mlflow_template: Path, before: Callable[[MlflowServer], object] = lambda _: None
) -> tuple[MlflowServer, str]:
    """A server of a copy of the template store, whose start must fail after ``before``; and what it said."""
    shutil.copy(mlflow_template, tmp_path / "served.db")
    server = MlflowServer(f"sqlite:///{tmp_path / 'served.db'}", tmp_path / "artifacts")
    before(server)
    with pytest.raises(RuntimeError) as caught:
        server.start()
    assert server.pid is None, "no caller has a server to stop"
    return server, str(caught.value)


def test_a_server_that_cannot_start_says_why_with_the_end_of_its_log(
    tmp_path: Path, mlflow_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error of the forked server's own code was lost: os._exit ended it before Python printed it."""
    monkeypatch.setattr(services, "MLFLOW_SERVER_OPTIONS", ("--workers", "1"))  # uvicorn's, not gunicorn's
    server, said = _failed_start(tmp_path, mlflow_template)
    log = tmp_path / f"mlflow-{server.port}.log"
    assert said.startswith(f"the MLflow server at {server.url} exited; the last lines of its log {log}:\n")
    assert said.splitlines()[-1].startswith("  RuntimeError: the MLflow server's command is not gunicorn's: ")


class _Healthy(BaseHTTPRequestHandler):
    """Answers 200 to anything, as a health check wants."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def occupant() -> Iterator[Callable[[int], HTTPServer]]:
    """Starts another HTTP server, which answers 200, on a given port; stops them after the test."""
    started: list[HTTPServer] = []

    def occupy(port: int) -> HTTPServer:
        server = HTTPServer(("127.0.0.1", port), _Healthy)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server

    yield occupy
    for server in started:
        server.shutdown()
        server.server_close()


def test_a_server_whose_port_is_taken_says_so_before_it_starts(
    tmp_path: Path, mlflow_template: Path, occupant: Callable[[int], HTTPServer]
) -> None:
    """A server started again keeps its port: another process may have taken it since."""
    server, said = _failed_start(tmp_path, mlflow_template, lambda server: occupant(server.port))
    assert said == (
        f"the MLflow server at {server.url} cannot start: another process listens on its port {server.port}; "
        "make a new MlflowServer (a new port), or end that process"
    )


def test_another_process_answering_on_the_port_is_not_taken_for_the_server(
    tmp_path: Path,
    mlflow_template: Path,
    occupant: Callable[[int], HTTPServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The port was taken after the check, before the server bound it: the other's answer passed for its."""
    # the port is free when the server checks it, taken right after
    monkeypatch.setattr(services, "port_taken", lambda port: occupant(port) is None)
    server, said = _failed_start(tmp_path, mlflow_template)
    log = tmp_path / f"mlflow-{server.port}.log"
    assert said.startswith(
        f"the MLflow server at {server.url} exited; another process answers on its port; "
        f"the last lines of its log {log}:\n"
    )
    assert "Connection in use" in said, "gunicorn's own words: it could not bind the port"


_TESTS = """
import sys, time
from pathlib import Path
from autotweak.testing.services import MlflowServer
server = MlflowServer(sys.argv[1], Path(sys.argv[2]))
server.start()
print(server.pid, flush=True)
time.sleep(600)
"""


@pytest.fixture
def tests_process(tmp_path: Path, mlflow_template: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A process that started an MLflow server as the tests do, and the server's process group."""
    shutil.copy(mlflow_template, tmp_path / "served.db")
    proc = subprocess.Popen(
        [sys.executable, "-c", _TESTS, f"sqlite:///{tmp_path / 'served.db'}", str(tmp_path / "artifacts")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    group = int(proc.stdout.readline())
    try:
        yield proc, group
    finally:
        proc.kill()
        proc.wait()
        for pid in group_members(group):  # a server left running would run for good
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    "stop",  # the same end for the forking process: its standard input closes (about 20 s each, loaded)
    [signal.SIGKILL, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)],
    ids=["SIGKILL", "SIGTERM"],
)
def test_no_server_outlives_the_tests_process(
    tests_process: tuple[subprocess.Popen[str], int], stop: signal.Signals
) -> None:
    """Its servers ran on, each in a session of its own: gunicorn and its worker, for good."""
    proc, group = tests_process
    assert len(group_members(group)) == 2  # `mlflow server` (gunicorn) and its worker
    proc.send_signal(stop)  # no teardown, no atexit: only the pipe to the forking process closes
    proc.wait()
    deadline = time.monotonic() + 60
    while group_members(group) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert group_members(group) == []
