"""``scripts/team_stores.sh``: it starts servers of its own, or says why it cannot, at once.

The script runs from a copy of the repository's layout whose ``.venv/bin/mlflow`` is a
stand-in: one that exits at once, or one that answers ``/health`` like a tracking server.
PostgreSQL is real.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autotweak.testing.services import free_port

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "team_stores.sh"

pytestmark = pytest.mark.skipif(
    not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")), reason="PostgreSQL is not installed"
)

CRASHING_MLFLOW = "#!/bin/sh\necho 'mlflow: cannot start' >&2\nexit 3\n"
# Answers every GET with 200 on the --port it is given, as `mlflow server` answers /health.
SERVING_MLFLOW = f"""#!/bin/bash
port=$(echo "$@" | sed -E 's/.*--port ([0-9]+).*/\\1/')
{sys.executable} -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"OK")
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
' "$port"
"""


@pytest.fixture
def checkout() -> Iterator[Path]:
    """A folder laid out as the repository, in a place the ``postgres`` user can reach."""
    root = Path(tempfile.mkdtemp(prefix="autotweak-stores-"))
    root.chmod(0o755)
    (root / "scripts").mkdir()
    shutil.copy(SCRIPT, root / "scripts")
    (root / ".venv" / "bin").mkdir(parents=True)
    yield root
    _run(root, "stop", pg_port=0, mlflow_port=0)
    shutil.rmtree(root, ignore_errors=True)


def _fake_mlflow(root: Path, text: str) -> None:
    path = root / ".venv" / "bin" / "mlflow"
    path.write_text(text)
    path.chmod(0o755)


def _run(root: Path, action: str, *, pg_port: int, mlflow_port: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PG_PORT": str(pg_port), "MLFLOW_PORT": str(mlflow_port)}
    return subprocess.run(
        ["bash", str(root / "scripts" / "team_stores.sh"), action, str(root / "stores")],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port that another server listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_start_refuses_a_taken_mlflow_port_before_starting_anything(checkout, taken_port):
    _fake_mlflow(checkout, SERVING_MLFLOW)
    done = _run(checkout, "start", pg_port=free_port(), mlflow_port=taken_port)
    assert done.returncode == 1
    assert f"MLFLOW_PORT={taken_port}: another server already listens" in done.stderr
    assert "export MLFLOW_TRACKING_URI" not in done.stdout
    assert not (checkout / "stores" / "pg").exists(), "PostgreSQL was not started"


def test_start_refuses_a_taken_postgresql_port(checkout, taken_port):
    _fake_mlflow(checkout, SERVING_MLFLOW)
    done = _run(checkout, "start", pg_port=taken_port, mlflow_port=free_port())
    assert done.returncode == 1
    assert f"PG_PORT={taken_port}: another server already listens" in done.stderr


def test_start_says_at_once_that_the_mlflow_command_is_missing(checkout):
    done = _run(checkout, "start", pg_port=free_port(), mlflow_port=free_port())
    assert done.returncode == 1
    assert ".venv/bin/mlflow is missing" in done.stderr


def test_a_crashing_mlflow_server_fails_at_once_and_start_can_run_again(checkout):
    _fake_mlflow(checkout, CRASHING_MLFLOW)
    pg_port, mlflow_port = free_port(), free_port()
    began = time.monotonic()
    done = _run(checkout, "start", pg_port=pg_port, mlflow_port=mlflow_port)
    assert done.returncode == 1
    assert time.monotonic() - began < 60, "it did not wait for a server that had exited"
    assert f"see {checkout / 'stores' / 'mlflow.log'}" in done.stderr
    _fake_mlflow(checkout, SERVING_MLFLOW)
    again = _run(checkout, "start", pg_port=pg_port, mlflow_port=mlflow_port)
    assert again.returncode == 0, again.stderr
    assert "PostgreSQL of" in again.stderr and "keeping it" in again.stderr
    assert f"export MLFLOW_TRACKING_URI=http://127.0.0.1:{mlflow_port}" in again.stdout


def test_start_again_keeps_the_running_servers_and_refuses_other_ports(checkout):
    _fake_mlflow(checkout, SERVING_MLFLOW)
    pg_port, mlflow_port = free_port(), free_port()
    assert _run(checkout, "start", pg_port=pg_port, mlflow_port=mlflow_port).returncode == 0
    pid = (checkout / "stores" / "mlflow.pid").read_text().strip()
    again = _run(checkout, "start", pg_port=pg_port, mlflow_port=mlflow_port)
    assert again.returncode == 0, again.stderr
    assert f"MLflow server of {checkout / 'stores'} already running (pid {pid})" in again.stderr
    other = free_port()
    moved = _run(checkout, "start", pg_port=pg_port, mlflow_port=other)
    assert moved.returncode == 1
    assert f"already runs on port {mlflow_port}, not MLFLOW_PORT={other}" in moved.stderr
    assert _run(checkout, "stop", pg_port=pg_port, mlflow_port=mlflow_port).returncode == 0
    assert not (checkout / "stores" / "mlflow.pid").exists()


# As SERVING_MLFLOW, but it takes two seconds to let go of its port once told to stop.
SLOW_STOPPING_MLFLOW = SERVING_MLFLOW.replace(
    "import http.server, sys",
    "import http.server, os, signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(2), os._exit(0)))",
)


def test_stop_waits_for_the_server_so_that_start_can_follow_at_once(checkout):
    _fake_mlflow(checkout, SLOW_STOPPING_MLFLOW)
    pg_port, mlflow_port = free_port(), free_port()
    assert _run(checkout, "start", pg_port=pg_port, mlflow_port=mlflow_port).returncode == 0
    assert _run(checkout, "stop", pg_port=pg_port, mlflow_port=mlflow_port).returncode == 0
    again = _run(checkout, "start", pg_port=pg_port, mlflow_port=mlflow_port)
    assert again.returncode == 0, again.stderr


def test_a_relative_folder_is_taken_from_where_the_script_is_run(checkout, tmp_path):
    done = subprocess.run(
        ["bash", str(checkout / "scripts" / "team_stores.sh"), "stop", "mine"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"stopped the stores in {tmp_path / 'mine'}"
