"""``autotweak ui``: the MLflow UI on the tracking store."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import click

from autotweak._locations import resolve_tracking_uri
from autotweak.cli._main import _console
from autotweak.cli._stores import tracking_option

__all__ = ["ui"]


@click.command()
@tracking_option
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True)
def ui(tracking_uri: str | None, port: int, host: str) -> None:
    """Serve the MLflow UI on the tracking store (loopback by default)."""
    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        _console.line(f"the tracking store is a server already: open {uri}")
        return
    mlflow = shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow"))
    _console.line(f"MLflow UI on http://{host}:{port} for {uri} (Ctrl-C to stop)")
    _console.line(f"  experiments: http://{host}:{port}/#/experiments?workflowType=machine_learning")
    command = [
        mlflow,
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # One worker and no job runner: the UI is for one person, and each extra process takes seconds to
    # start on a small machine (as scripts/team_stores.sh runs the team's server).
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    # Its own session, so that Ctrl-C reaches only autotweak, which then stops it quietly.
    server = subprocess.Popen(command, env=env, start_new_session=True)
    # Ctrl-C, a `kill` or a closed terminal stop it; SIGINT too, as a process started in the
    # background by a shell inherits it ignored.
    for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, signal.default_int_handler)
    try:
        code = server.wait()
    except KeyboardInterrupt:
        _stop(server)
        _console.line("MLflow UI stopped")
        raise SystemExit(0) from None
    raise SystemExit(code)


def _stop(server: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Stop the UI server and the workers it started (they share its process group)."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=grace)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
