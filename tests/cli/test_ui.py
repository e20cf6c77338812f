"""``autotweak ui`` on a real MLflow server: it says it is starting, then that it answers, or why not."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.engine.test_workers import start_cli


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _ui(port: int, cwd: Path) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str]]]:
    """``autotweak ui --port PORT``, its lines (stdout and stderr) in a queue; stopped as by ``kill``."""
    proc = start_cli(["ui", "--port", str(port)], cwd)
    lines: queue.Queue[str] = queue.Queue()
    out = proc.stdout
    assert out is not None
    reader = threading.Thread(target=lambda: [lines.put(line) for line in out], daemon=True)
    reader.start()
    try:
        yield proc, lines
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # it stops its server, in a session of its own
        proc.wait(timeout=60)
        reader.join(timeout=10)


def test_it_says_it_is_starting_then_that_the_server_answers(home):
    port = _port()
    with _ui(port, home.parent) as (proc, lines):
        starting = lines.get(timeout=60)
        assert starting.startswith(f"MLflow UI starting on http://127.0.0.1:{port} for sqlite:///")
        assert "(Ctrl-C to stop)" in starting
        ready = lines.get(timeout=180)  # the server's own lines as it starts are kept back
        assert (
            ready == f"MLflow UI ready: http://127.0.0.1:{port}/#/experiments?workflowType=machine_learning\n"
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
            assert response.status == 200
        assert proc.poll() is None


@pytest.mark.slow  # a tracking server's start
def test_a_server_that_exits_before_answering_is_said_with_its_code_and_last_lines(home):
    """The port is taken by a socket that does not listen: MLflow's server starts, fails to bind, exits."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with _ui(port, home.parent) as (proc, lines):
            assert proc.wait(timeout=180) == 1, "the server's own code (0) is not a success here"
        out = "".join(lines.queue)
    assert "MLflow UI ready" not in out
    assert "error: the MLflow UI server exited with code 0 before it answered; its last lines:\n" in out
    assert "address already in use" in out.split("its last lines:")[1], out


def test_a_port_something_listens_on_is_refused_before_a_server_starts(home):
    """Its ``/health`` might answer for the UI, which then could not start."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with _ui(port, home.parent) as (proc, lines):
            assert proc.wait(timeout=60) == 2
        out = "".join(lines.queue)
    assert out.startswith(f"error: port {port} on 127.0.0.1 is in use already (something listens there); ")
    assert f"choose another port: `autotweak ui --port {port + 1}`." in out and "starting" not in out
