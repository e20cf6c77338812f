"""A line when an MLflow tracking server keeps a reading of runs waiting, with how to bound the wait.

MLflow's client retries a failing request with pauses that grow between tries (about four
minutes where the server is down; each try waits up to MLflow's request timeout for an
answer). A server that dies while runs are read would keep ``autotweak meta fit`` silent
that long. A request still unanswered after :data:`SAY_AFTER` seconds is said, once per
reading: the server, the request, MLflow's retry settings and the one that bounds them. The
settings are MLflow's own environment variables, read, never set here (they are the process's).
A request that fails in the end is one line naming the server and what it was asked, not
MLflow's exception with its URL and retries.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT
from mlflow.exceptions import MlflowException

from autotweak.meta._histories import HistoryError
from autotweak.tracking._server import failure_reason, no_server_answers

__all__ = ["FIX", "SAY_AFTER", "TrackingServerError", "Waits", "waiting_line"]

_log = logging.getLogger(__name__)

SAY_AFTER = 10.0  # seconds: a large page of runs from a loaded server takes a few
FIX = "start it, or pass the URI of one that runs as `tracking_uri`"  # the CLI says its own option


class TrackingServerError(HistoryError):
    """The tracking server does not serve: ``read_mlflow``'s first request to it, or a later one, failed.

    Its advice names the Python argument; :meth:`advising` gives it another's, so that a
    caller that took the URI otherwise (the CLI's ``--mlflow``) need not ask the server again.
    """

    def advising(self, fix: str) -> str:
        """The message with ``fix`` as its advice, where it advises passing ``tracking_uri``."""
        text = str(self)
        return text.removesuffix(FIX) + fix if text.endswith(FIX) else text


class Waits:
    """Says, once, a request to the tracking server that has waited :data:`SAY_AFTER` seconds.

    Example:
        >>> waits = Waits("http://mlflow:5000", "http://mlflow:5000")
        >>> with waits.on("listing the experiments"):
        ...     pass  # a request of MlflowClient's
    """

    def __init__(self, tracking_uri: str, where: str) -> None:
        # MLflow retries HTTP requests only: a database or file store answers or raises
        self._server = where if tracking_uri.startswith(("http://", "https://")) else None
        self._lock = threading.Lock()
        self._said = False

    @contextmanager
    def on(self, what: str) -> Iterator[None]:
        """Around requests of the reading, ``what`` they do in words (``listing the experiments``).

        Raises:
            TrackingServerError: If the server fails a request once MLflow's client has spent its retries.
        """
        with self.waiting(what):
            try:
                yield
            # MLflow's words are a traceback's, with its URL's and its retries'
            except MlflowException as exc:
                if self._server is None:
                    raise
                raise self._failed(self._server, what, exc) from None

    def gone(self, what: str, exc: Exception) -> TrackingServerError | None:
        """The error to stop the reading with where ``exc``, raised ``what``-ing, says no server answers.

        A request whose error the caller keeps (one run's curve) fails alone where the server
        answers; where none answers, every request after it would spend MLflow's retries too.
        """
        if self._server is None or not no_server_answers(exc):
            return None
        return self._failed(self._server, what, exc)

    @staticmethod
    def _failed(server: str, what: str, exc: Exception) -> TrackingServerError:
        reason = failure_reason(exc, MLFLOW_HTTP_REQUEST_TIMEOUT.get())  # type: ignore[no-untyped-call]
        return TrackingServerError(f"MLflow server {server} failed while {what}: {reason}; {FIX}")

    @contextmanager
    def waiting(self, what: str) -> Iterator[None]:
        """Around requests whose errors the caller keeps (one run's curve): only the line of a long wait."""
        if self._server is None or self._said:
            yield
            return
        timer = threading.Timer(SAY_AFTER, self._say, (self._server, what))
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def _say(self, server: str, what: str) -> None:
        with self._lock:
            if self._said:
                return
            self._said = True
        _log.warning("%s", waiting_line(server, what))


def waiting_line(server: str, what: str) -> str:
    """What a reading waits on, and how long MLflow's client may keep it waiting."""
    retries = MLFLOW_HTTP_REQUEST_MAX_RETRIES.get()  # type: ignore[no-untyped-call]
    timeout = MLFLOW_HTTP_REQUEST_TIMEOUT.get()  # type: ignore[no-untyped-call]
    return (
        f"waiting on MLflow server {server} ({what}): no answer for {SAY_AFTER:g} s; MLflow's client "
        f"retries a failing request {retries} time(s) (MLFLOW_HTTP_REQUEST_MAX_RETRIES={retries}) with "
        f"pauses that grow between tries, each try waiting up to {timeout} s for an answer "
        f"(MLFLOW_HTTP_REQUEST_TIMEOUT={timeout}): minutes where the server is down. Set "
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES=1 to give up on it in seconds."
    )
