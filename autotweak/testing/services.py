"""Real services for tests and benchmarks: PostgreSQL, an MLflow tracking server, moto, on loopback.

Both run from a temporary folder and stop when the context ends. PostgreSQL comes from
Debian's packages (``scripts/setup.sh`` installs it); as root, it runs as the ``postgres``
user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from autotweak.testing._ports import group_listens, port_taken

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

    ``mlflow server`` with :data:`MLFLOW_SERVER_OPTIONS`, forked from a process that
    imported MLflow's server once (:mod:`autotweak.testing._mlflow_forks`): a start takes a
    fraction of a second, not the command's 6-10 s. Killed as in a crash, and started again
    on the same port and stores.

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
        self._pid: int | None = None

    def start(self) -> None:
        """Start the server and wait until it answers.

        Raises:
            RuntimeError: If its port is taken (a server started again keeps its port), or
                the server does not start: with the end of its log.
        """
        if port_taken(self.port):
            raise RuntimeError(
                f"the MLflow server at {self.url} cannot start: another process listens on its port "
                f"{self.port}; make a new MlflowServer (a new port), or end that process"
            )
        argv = [
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
        ]
        log = self.artifacts.parent / f"mlflow-{self.port}.log"
        pid = self._pid = _FORKS.fork(argv, {**os.environ, **MLFLOW_SERVER_ENV}, log)
        try:
            ours = partial(group_listens, pid, self.port)
            _wait_healthy(self.url, lambda: _running(pid), ours, name="MLflow server", log=log)
        except BaseException:  # not healthy, or Ctrl-C: no caller has a server to stop
            self.kill()
            raise

    @property
    def pid(self) -> int | None:
        """The server's process id (its process group's), while it runs."""
        return self._pid

    def kill(self) -> None:
        """SIGKILL the server's process group: it goes away at once, as in a crash."""
        if self._pid is not None:
            _end_group(self._pid, signal.SIGKILL, wait=30.0)
            self._pid = None

    def stop(self) -> None:
        """Stop the server if it runs (a test may have killed it by its process id)."""
        # a server started again under a client that kept retrying the old one may not
        # finish its graceful shutdown: its stores are written per request, so kill it soon
        if self._pid is not None and not _end_group(self._pid, signal.SIGTERM, wait=1.0):
            _end_group(self._pid, signal.SIGKILL, wait=30.0)
        self._pid = None

    def __enter__(self) -> MlflowServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Forks:
    """What forks the MLflow servers (:mod:`autotweak.testing._mlflow_forks`), started with the first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None

    def fork(self, argv: list[str], env: dict[str, str], log: Path) -> int:
        """Fork ``mlflow server ARGV`` with ``env``, its output appended to ``log``; its process id."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._start()
            assert self._proc.stdin is not None and self._proc.stdout is not None
            self._proc.stdin.write(json.dumps({"argv": argv, "env": env, "log": str(log)}) + "\n")
            self._proc.stdin.flush()
            answer = self._proc.stdout.readline()
        if not answer.strip().isdigit():
            raise RuntimeError(f"the process that forks MLflow servers ended (code {self._proc.poll()})")
        return int(answer)

    def _start(self) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("_mlflow_forks.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # it ends as its standard input closes, with this process
            env={**os.environ, **MLFLOW_SERVER_ENV},
        )
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the process that forks MLflow servers exited with code {proc.wait()}")
        atexit.register(self._end, proc)
        return proc

    @staticmethod
    def _end(proc: subprocess.Popen[str]) -> None:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)


_FORKS = _Forks()


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists (the forking process reaps its servers as they end)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _end_group(pid: int, stop_signal: signal.Signals, *, wait: float) -> bool:
    """Send the process group ``pid`` ``stop_signal``; whether its leader ended within ``wait`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, stop_signal)
    deadline = time.monotonic() + wait
    while _running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


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
        ours = partial(group_listens, proc.pid, port)
        _wait_healthy(url, lambda: proc.poll() is None, ours, path="/moto-api/", name="moto server")
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
    url: str,
    running: Callable[[], bool],
    ours: Callable[[], bool],
    *,
    path: str = "/health",
    name: str = "MLflow server",
    log: Path | None = None,
) -> None:
    """Wait until the server answers at ``url``; or raise, with the end of its ``log`` where it has one.

    An answer counts only once the port is the server's (``ours``): another process that
    took the port first answers too, while the server fails to bind it.
    """
    deadline = time.monotonic() + 120
    foreign = ""
    while time.monotonic() < deadline:
        if not running():
            raise RuntimeError(f"the {name} at {url} exited{foreign}{_log_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}{path}", timeout=2) as response:
                if response.status == 200 and ours():
                    return
                foreign = "; another process answers on its port"
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the {name} at {url} did not become healthy in 120 s{foreign}{_log_tail(log)}")


LOG_TAIL_LINES = 30


def _log_tail(log: Path | None) -> str:
    """``; the last lines of its log PATH:`` and them (a traceback's end says why), or nothing."""
    if log is None:
        return ""
    try:
        lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    except OSError as exc:
        return f"; its log {log} cannot be read ({exc.strerror})"
    shown = "\n".join(f"  {line}" for line in lines) if lines else "  (empty)"
    return f"; the last lines of its log {log}:\n{shown}"
