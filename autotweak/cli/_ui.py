"""``autotweak ui``: the MLflow UI on the tracking store.

MLflow's server takes seconds to half a minute to answer on a small machine: the command
says it is starting, then that it answers (it asks the server's ``/health`` until then), or,
should the server exit first, its exit code and the last lines it wrote.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections import deque
from pathlib import Path
from typing import IO

import click

from autotweak._locations import resolve_tracking_uri
from autotweak.cli._main import _console
from autotweak.cli._stores import tracking_option
from autotweak.exceptions import AutotweakError

__all__ = ["ui"]

_POLL_S = 0.5  # between two questions to the server: it answers in seconds, not milliseconds
_ASK_S = 2.0  # one question's timeout: a server still starting may accept and answer late
_TAIL = 15  # lines of its output shown when the server exits before answering


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
    probe = _probe_address(host, port)
    if _listening(probe):  # its /health would answer for ours, which then cannot start
        raise AutotweakError(
            f"port {port} on {host} is in use already (something listens there); stop it, or choose "
            f"another port: `autotweak ui --port {port + 1}`."
        )
    address = f"http://{host}:{port}"
    _console.line(f"MLflow UI starting on {address} for {uri} (Ctrl-C to stop); it answers in seconds")
    server = _start(uri, host, port)
    output = _Output(server.stdout)  # type: ignore[arg-type]
    # Ctrl-C, a `kill` or a closed terminal stop it; SIGINT too, as a process started in the
    # background by a shell inherits it ignored.
    for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, signal.default_int_handler)
    try:
        if _wait_until_answers(server, probe):
            _console.line(f"MLflow UI ready: {address}/#/experiments?workflowType=machine_learning")
            output.show()
        code = server.wait()
    except KeyboardInterrupt:
        _stop(server)
        _console.line("MLflow UI stopped")
        raise SystemExit(0) from None
    if not output.shown:
        _said_exit(code, output.last())
        raise SystemExit(code or 1)
    raise SystemExit(code)


def _start(uri: str, host: str, port: int) -> subprocess.Popen[bytes]:
    """Start ``mlflow ui`` on ``uri``; its output (standard error too) comes through a pipe."""
    mlflow = shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow"))
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
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )


class _Output:
    """The server's output: kept (its last lines) until :meth:`show`, then passed on to stderr.

    What it says as it starts is its own chatter once it answers; what it says later (an
    error) the user sees.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self._last: deque[str] = deque(maxlen=_TAIL)
        self.shown = False
        self._reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._reader.start()

    def show(self) -> None:
        """Pass on what it writes from now on."""
        self.shown = True

    def last(self) -> list[str]:
        """Its last lines, once it has closed its output (or after a few seconds' wait)."""
        self._reader.join(timeout=5)
        return list(self._last)

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:  # ends as the server exits
            line = raw.decode(errors="replace").rstrip()
            if self.shown:
                _console.err.print(line, markup=False, highlight=False, soft_wrap=True)
            else:
                self._last.append(line)


def _wait_until_answers(server: subprocess.Popen[bytes], probe: tuple[str, int]) -> bool:
    """Ask the server's ``/health`` until it answers (``True``) or exits (``False``)."""
    host, port = probe
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/health"
    while server.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=_ASK_S) as response:
                if response.status == 200:
                    return True
        except OSError:  # refused while it starts, or a late answer
            pass
        try:
            server.wait(timeout=_POLL_S)  # a sleep that ends as it exits
        except subprocess.TimeoutExpired:
            continue
    return False


def _said_exit(code: int, lines: list[str]) -> None:
    """Say that the server exited before it answered, with its code and its last lines."""
    shown = "\n".join(f"  {line}" for line in lines) if lines else "  (it wrote nothing)"
    _console.error(
        f"the MLflow UI server exited with code {code} before it answered; its last lines:\n{shown}"
    )


def _probe_address(host: str, port: int) -> tuple[str, int]:
    """Where to reach the server from here: a wildcard host is served on loopback too."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host), port


def _listening(address: tuple[str, int]) -> bool:
    """Whether something accepts connections at ``address`` now."""
    try:
        with socket.create_connection(address, timeout=1.0):
            return True
    except OSError:
        return False


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
