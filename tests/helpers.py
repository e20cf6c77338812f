"""Readers of the stores for assertions, a fake HTTP server and a silent one (tests only)."""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import optuna
import sqlalchemy
from mlflow import MlflowClient
from mlflow.entities import Run
from optuna.storages import RDBStorage
from sqlalchemy.pool import NullPool

from autotweak._locations import resolve_storage_url
from autotweak.spec import Experiment
from autotweak.testing.services import Postgres


def load(experiment: Experiment) -> optuna.Study:
    """The Optuna study of ``experiment`` in this test's storage, holding no connection between reads.

    Each read connects and closes (no pool): a pool per call, kept open until the garbage
    collector freed it, counted in the connection-count tests of the calls that ran meanwhile.
    """
    storage = RDBStorage(resolve_storage_url(experiment.storage), engine_kwargs={"poolclass": NullPool})
    return optuna.load_study(study_name=experiment.name, storage=storage)


def is_up(url: str) -> bool:
    """Whether the database server of ``url`` takes a connection."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect():
            return True
    except sqlalchemy.exc.OperationalError:
        return False
    finally:
        engine.dispose()


def drop_studies(pg: Postgres, url: str) -> None:
    """Delete the studies of the Optuna database ``url``, its server started again if a test left it down."""
    if not is_up(url):
        pg.ctl("start")
    storage = optuna.storages.RDBStorage(url)
    for study in storage.get_all_studies():
        storage.delete_study(study._study_id)
    storage.engine.dispose()


# The start of a script whose stores, as they open, get a signal ({signal}: SIGINT or SIGTERM)
# while a garbage-collection callback runs, as it does in SQLAlchemy's
# (sqlalchemy/event/registry.py, _collection_gced): Python cannot raise the KeyboardInterrupt there.
STOP_IN_A_FINALIZER = """
import signal, sys, weakref
import autotweak.engine._opening as opening

opened = opening.make_storage

class Thing:
    pass

def make_storage(*args, **kwargs):
    storage = opened(*args, **kwargs)
    thing = Thing()
    ref = weakref.ref(thing, lambda _: signal.raise_signal(signal.{signal}))
    del thing
    return storage

opening.make_storage = make_storage
"""


@dataclass
class Runs:
    parents: list[Run] = field(default_factory=list)
    children: dict[int, Run] = field(default_factory=dict)
    duplicates: list[int] = field(default_factory=list)


def mlflow_runs(client: MlflowClient, study: str) -> Runs:
    """The study's parent run(s) and child runs keyed by trial number."""
    experiment = client.get_experiment_by_name(study)
    assert experiment is not None, f"no MLflow experiment named {study}"
    runs = Runs()
    for run in client.search_runs([experiment.experiment_id], max_results=5000):
        kind = run.data.tags.get("autotweak.kind")
        if kind == "study":
            runs.parents.append(run)
        elif kind == "trial":
            number = int(run.data.tags["autotweak.trial_number"])
            if number in runs.children:
                runs.duplicates.append(number)
            runs.children[number] = run
    return runs


# (status, content type, body) for a path; the fake serves it to GET and POST alike.
Answer = tuple[int, str, str]
MLFLOW_OK: Answer = (200, "application/json", json.dumps({"experiments": []}))


@contextmanager
def fake_server(
    answer: Callable[[str], Answer], headers: list[dict[str, str]] | None = None
) -> Iterator[str]:
    """An HTTP server on loopback that answers each request with ``answer(path)``; yields its URL.

    Each request's headers are appended to ``headers``, if given.
    """

    class Handler(http.server.BaseHTTPRequestHandler):
        def _reply(self) -> None:
            if headers is not None:
                headers.append(dict(self.headers.items()))
            status, kind, body = answer(self.path)
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _reply

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def silent_postgres() -> Iterator[str]:
    """A PostgreSQL URL whose server takes connections and never answers; yields the URL.

    The kernel completes each TCP handshake on the listening socket, and nobody reads it:
    a client waits for the server's first word as it would behind a partition that drops
    packets (no refusal comes back).
    """
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(16)
        yield f"postgresql+psycopg2://autotweak@127.0.0.1:{listening.getsockname()[1]}/optuna"


class Gate:
    """A loopback TCP proxy to a server, which holds each new connection while it is shut.

    A write sent through it while it is shut is under way, as one waiting out MLflow's
    retries of a dead server is, and lands when it opens: at a moment the test chooses.
    While ``passing`` is set, new connections go through though held ones still wait: the
    server answers others while that write waits for its next retry.
    """

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.open = threading.Event()
        self.open.set()
        self.passing = threading.Event()
        self.holding = threading.Event()  # a connection waits for the gate
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        if not (self.open.is_set() or self.passing.is_set()):
            self.holding.set()
            self.open.wait()
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
        except OSError:  # the server is down: refused, as it would be
            client.close()
            return
        threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
        _pipe(client, upstream)


def _pipe(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    for end in (source, target):
        with contextlib.suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)
