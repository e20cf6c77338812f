"""The helper process of :mod:`autotweak.tracking._offload`: a child interpreter that runs one tracker.

The parent holds a :class:`TrackerProcess` and calls the tracker's methods through it, one
at a time; the child runs :func:`serve`, which answers them until the parent is gone.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from autotweak.exceptions import TrackingError
from autotweak.tracking._base import BaseTracker

__all__ = ["TrackerProcess", "serve"]

_log = logging.getLogger(__name__)


class TrackerProcess:
    """A child Python process that runs one tracker and answers calls to it, one at a time.

    The child is a fresh interpreter running :func:`serve`, not a fork: it shares no
    connection or lock with this process, and it does not run the caller's ``__main__``
    again. It ignores Ctrl-C, so that an interrupt stops the trials and not the records,
    and exits when this process closes the connection or dies, once the call it is
    running is done.

    Args:
        factory: Builds the tracker in the child; pickled, so a class or a
            ``functools.partial`` of one, importable there.
    """

    def __init__(self, factory: Callable[[], BaseTracker]) -> None:
        built = pickle.dumps(factory)  # a factory that cannot travel fails here, before any child
        ours, theirs = socket.socketpair()
        with theirs:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD.format(fd=theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
            )
        self._conn = Connection(ours.detach())
        self._lock = threading.Lock()
        self._ready = False
        self._broken: str | None = None
        self._conn.send((list(sys.path), built))

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._proc.pid

    @property
    def broken(self) -> str | None:
        """Why the child can no longer be used, or ``None``."""
        return self._broken

    def ready(self, timeout: float = 0.0) -> bool:
        """Whether the child has built its tracker; waits up to ``timeout`` seconds for it."""
        if self._ready and self._broken is None:  # asked before every write: no wait for a call in flight
            return True
        with self._lock:
            if not self._ready and self._broken is None:
                try:
                    if self._conn.poll(timeout):
                        self._answer()
                        self._ready = True
                except Exception as exc:  # it died, or could not build its tracker
                    self._break(exc)
            return self._ready and self._broken is None

    def call(self, method: str, *args: Any) -> Any:
        """Call ``method`` of the child's tracker and return its result.

        Raises:
            TrackingError: The call failed in the child (with the child's traceback), or
                the child is gone; after the latter, :attr:`broken` says why.
        """
        with self._lock:
            if self._broken is not None:
                raise TrackingError(f"the tracking process is no longer used: {self._broken}")
            try:
                if not self._ready:  # its first answer says that the tracker is built
                    self._answer()
                    self._ready = True
                self._conn.send((method, args))
                return self._answer()
            except TrackingError as exc:
                if not self._ready:
                    self._break(exc)
                raise
            except BaseException as exc:  # a half-done exchange would pair the next call with this answer
                self._break(exc)
                if isinstance(exc, Exception):
                    raise TrackingError(f"the tracking process is gone: {self._broken}") from exc
                raise

    def _answer(self) -> Any:
        kind, payload = self._conn.recv()
        if kind == "error":
            raise TrackingError(f"the tracking process failed: {payload}")
        return payload

    def _break(self, exc: BaseException) -> None:
        """No more calls: the child finishes the one it runs, if any, and exits by itself."""
        code = self._proc.poll()
        self._broken = f"{type(exc).__name__}: {exc}" + ("" if code is None else f" (exit code {code})")
        self._conn.close()

    @property
    def busy(self) -> bool:
        """Whether a call is under way (its caller waits for the child's answer)."""
        return self._lock.locked()

    def kill(self) -> None:
        """End the child now, with the call it runs (whose caller gets a :class:`TrackingError`)."""
        self._proc.kill()
        self._proc.wait()

    def close(self, timeout: float = 60.0) -> None:
        """Let the child finish what it was asked, then wait for it to end (killed after ``timeout``)."""
        with self._lock:
            if self._broken is None:
                self._broken = "closed"
            self._conn.close()  # the child sees the end of its input once its current call is done
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _log.warning("the tracking process did not stop within %.0f s; killing it", timeout)
                self._proc.kill()
                self._proc.wait()


# -- the child ------------------------------------------------------------------------
# How the end of the parent shows on the connection: the end of the input (EOFError), or
# an error when the parent closed it with an answer still unread (ConnectionResetError)
# or before an answer was sent (BrokenPipeError). Either way nobody waits for an answer.
_PARENT_GONE = (EOFError, BrokenPipeError, ConnectionResetError)


def serve(conn: Connection) -> None:
    """Build the tracker from the first message, then answer calls until the parent is gone.

    The parent going away at any point (closed the connection, or died) ends the child
    quietly: every answer it waits for was sent before it closed, and a write that
    was under way when it went is finished first.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the trials; the records finish
    try:
        path, factory = conn.recv()
    except _PARENT_GONE:  # the parent went away before it said what to build
        return
    try:
        sys.path[:] = path
        tracker: BaseTracker = pickle.loads(factory)()
    except Exception as exc:
        _send(conn, ("error", f"could not build the tracker: {type(exc).__name__}: {exc}"))
        return
    try:
        if _send(conn, ("ok", os.getpid())):
            _answer_calls(conn, tracker)
    finally:
        tracker.close()


def _answer_calls(conn: Connection, tracker: BaseTracker) -> None:
    while True:
        try:
            method, args = conn.recv()
        except _PARENT_GONE:
            return
        try:
            answer = ("ok", getattr(tracker, method)(*args))
        except Exception as exc:
            answer = ("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        if not _send(conn, answer):
            return


def _send(conn: Connection, message: tuple[str, Any]) -> bool:
    """Send ``message`` to the parent; ``False`` when it is gone."""
    try:
        conn.send(message)
    except _PARENT_GONE:
        return False
    return True


_CHILD = (  # SIGINT is ignored first thing: a Ctrl-C during the imports must not print a traceback
    "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "from multiprocessing.connection import Connection; "
    "from autotweak.tracking._offload_process import serve; serve(Connection({fd}))"
)
