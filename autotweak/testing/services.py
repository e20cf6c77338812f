"""Real services for tests and benchmarks: PostgreSQL, an MLflow tracking server, moto, on loopback.

Both run from a temporary folder and stop when the context ends. PostgreSQL comes from
Debian's packages (``scripts/setup.sh`` installs it); as root, it runs as the ``postgres``
user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FAKE_AWS_ENV",
    "MLFLOW_SERVER_ENV",
    "MLFLOW_SERVER_OPTIONS",
    "MlflowServer",
    "Postgres",
    "free_port",
    "mlflow_server",
    "moto_server",
    "postgres",
]

# One gunicorn process with threads. MLflow's default (uvicorn, its Flask app behind an
# ASGI-to-WSGI bridge) answers each tracking call here in 20-40 ms, this in 5-7 ms; more
# processes only add contention on a small machine. scripts/team_stores.sh starts the same.
MLFLOW_SERVER_OPTIONS = ("--workers", "1", "--gunicorn-opts", "--threads 8")
# MLflow 3 also starts a job runner with eight consumer processes (about 2 GB and a third
# of a core while idle, here) for GenAI jobs that tracking experiments never use.
MLFLOW_SERVER_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg(tool: str) -> str:
    installed = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"), key=lambda p: int(p.parts[-3]))
    found = shutil.which(tool) or (str(installed[-1]) if installed else "")
    if not found:
        raise RuntimeError(
            f"PostgreSQL's {tool} is not installed; run scripts/setup.sh (it installs postgresql)"
        )
    return found


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@dataclass
class Postgres:
    """A running PostgreSQL server: its folder and port."""

    folder: Path
    port: int

    def url(self, database: str) -> str:
        """SQLAlchemy URL of ``database`` on this server."""
        return f"postgresql+psycopg2://autotweak@127.0.0.1:{self.port}/{database}"

    def ctl(self, *args: str) -> None:
        """Run ``pg_ctl`` on this server (start, stop, restart)."""
        command = [
            _pg("pg_ctl"),
            "-D",
            str(self.folder / "data"),
            "-l",
            str(self.folder / "log"),
            "-w",
            *args,
        ]
        if args[0] in ("start", "restart"):
            command += ["-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"]
        subprocess.run(_as_postgres(command), check=True, capture_output=True, timeout=60)

    def create_database(self, name: str) -> None:
        """Create an empty database."""
        subprocess.run(
            _as_postgres([_pg("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "autotweak", name]),
            check=True,
            capture_output=True,
            timeout=60,
        )


@contextmanager
def postgres() -> Iterator[Postgres]:
    """A throwaway PostgreSQL server on loopback, in a folder the ``postgres`` user can reach."""
    folder = Path(tempfile.mkdtemp(prefix="autotweak-pg-"))
    folder.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    server = Postgres(folder, free_port())
    subprocess.run(
        _as_postgres(
            [_pg("initdb"), "-D", str(folder / "data"), "-A", "trust", "-U", "autotweak", "--no-sync"]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    server.ctl("start")
    try:
        yield server
    finally:
        server.ctl("stop", "-m", "fast")
        shutil.rmtree(folder, ignore_errors=True)


class MlflowServer:
    """An MLflow tracking server on loopback, which a test may kill and start again.

    One process (:data:`MLFLOW_SERVER_OPTIONS`); killed as in a crash, and started again on
    the same port and stores.

    Example:
        >>> with MlflowServer("sqlite:///mlflow.db", Path("artifacts")) as server:  # doctest: +SKIP
        ...     server.kill()
        ...     server.start()
    """

    def __init__(self, backend_uri: str, artifacts: Path) -> None:
        self.backend_uri = backend_uri
        self.artifacts = artifacts
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until it answers."""
        with (self.artifacts.parent / f"mlflow-{self.port}.log").open("a") as log:
            self._proc = subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("mlflow")),
                    "server",
                    "--backend-store-uri",
                    self.backend_uri,
                    "--artifacts-destination",
                    self.artifacts.as_uri(),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    *MLFLOW_SERVER_OPTIONS,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **MLFLOW_SERVER_ENV},
            )
        _wait_healthy(self.url, self._proc)

    @property
    def pid(self) -> int | None:
        """The server's process id (its process group's), while it runs."""
        return None if self._proc is None else self._proc.pid

    def kill(self) -> None:
        """SIGKILL the server's process group: it goes away at once, as in a crash."""
        if self._proc is not None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=30)
            self._proc = None

    def stop(self) -> None:
        """Stop the server if it runs (a test may have killed it by its process id)."""
        if self._proc is not None and self._proc.poll() is None:
            # a server started again under a client that kept retrying the old one may not
            # finish its graceful shutdown: its stores are written per request, so kill it soon
            _stop(self._proc, grace=5.0)
        self._proc = None

    def __enter__(self) -> MlflowServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def mlflow_server(backend_uri: str, artifacts: Path) -> Iterator[str]:
    """An MLflow tracking server (one process, :data:`MLFLOW_SERVER_OPTIONS`) on loopback; yields its URL."""
    with MlflowServer(backend_uri, artifacts) as server:
        yield server.url


FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAAUTOTWEAKTESTKEY1",
    "AWS_SECRET_ACCESS_KEY": "autotweak/test+SecretKeyThatMustNeverLeak00",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextmanager
def moto_server() -> Iterator[dict[str, str]]:
    """Moto in server mode (EC2, S3, IAM, ...) on loopback; yields the environment pointing boto3 at it.

    The environment holds ``AWS_ENDPOINT_URL`` and fake credentials; set it in the tests'
    environment (and their subprocesses') so that boto3's default chain finds them.
    """
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, path="/moto-api/", name="moto server")
        yield {**FAKE_AWS_ENV, "AWS_ENDPOINT_URL": url}
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    """SIGTERM the server's process group; SIGKILL it if it is still there ``grace`` seconds later."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _wait_healthy(
    url: str, proc: subprocess.Popen[bytes], *, path: str = "/health", name: str = "MLflow server"
) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the {name} exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}{path}", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the {name} did not become healthy in 120 s")
