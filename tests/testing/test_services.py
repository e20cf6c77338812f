"""The test services' MLflow servers: a server that cannot start says why; none outlives the tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autotweak.testing import services
from autotweak.testing.services import MlflowServer


def test_a_server_that_cannot_start_says_why_with_the_end_of_its_log(
    tmp_path: Path, mlflow_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error of the forked server's own code was lost: os._exit ended it before Python printed it."""
    monkeypatch.setattr(services, "MLFLOW_SERVER_OPTIONS", ("--workers", "1"))  # uvicorn's, not gunicorn's
    shutil.copy(mlflow_template, tmp_path / "served.db")
    server = MlflowServer(f"sqlite:///{tmp_path / 'served.db'}", tmp_path / "artifacts")
    with pytest.raises(RuntimeError) as caught:
        server.start()
    said = str(caught.value)
    log = tmp_path / f"mlflow-{server.port}.log"
    assert said.startswith(f"the MLflow server at {server.url} exited; the last lines of its log {log}:\n")
    assert said.splitlines()[-1].startswith("  RuntimeError: the MLflow server's command is not gunicorn's: ")
    assert server.pid is None


def _members(group: int) -> list[int]:
    """The live processes of process group ``group`` (zombies are not: they wait to be reaped)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            found.append(int(entry.name))
    return found


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
        for pid in _members(group):  # a server left running would run for good
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
    assert len(_members(group)) == 2  # `mlflow server` (gunicorn) and its worker
    proc.send_signal(stop)  # no teardown, no atexit: only the pipe to the forking process closes
    proc.wait()
    deadline = time.monotonic() + 60
    while _members(group) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _members(group) == []
