"""A storage that does not answer for a while: which errors say so, retries through them, heartbeats.

A database restarting, or a network partition, makes a storage unreachable for seconds
or minutes; the workers wait it out rather than lose their place in the study.

The stale-trial sweep that reads the heartbeats written here is in
:mod:`~autotweak.engine._stale`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import optuna
import sqlalchemy
from optuna.storages import BaseStorage

from autotweak._optuna_private import BaseHeartbeat
from autotweak.engine._contact import CONTACT
from autotweak.engine._storage import storage_name
from autotweak.exceptions import AutotweakError

__all__ = [
    "RETRY_TIMEOUT",
    "STILL_UNREACHABLE_EVERY",
    "StorageUnreachableError",
    "heartbeat",
    "is_transient",
    "retrying",
]

_log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_TIMEOUT = 120.0  # seconds a storage operation is retried before the storage counts as down
STILL_UNREACHABLE_EVERY = 60.0  # seconds between the lines that say a storage is still unreachable


@contextmanager
def heartbeat(storage: BaseStorage, trial_id: int, interval: int | None) -> Iterator[None]:
    """Record a running trial's heartbeat every ``interval`` seconds in a daemon thread."""
    if not interval or not isinstance(storage, BaseHeartbeat):
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        failing = False
        while not stop.is_set():
            try:
                storage.record_heartbeat(trial_id)
                CONTACT.reached()
                failing = False
            except Exception as exc:  # a storage hiccup must not kill the trial
                if is_transient(exc):
                    CONTACT.lost()
                if not failing:  # once per outage, not once per beat
                    _log.warning(
                        "could not record the heartbeat of trial id %d (%s); trying again every %d s",
                        trial_id,
                        type(_root(exc)).__name__,
                        interval,
                    )
                _log.debug("heartbeat of trial id %d failed", trial_id, exc_info=True)
                failing = True
            stop.wait(interval)

    thread = threading.Thread(target=beat, name=f"autotweak-heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread is not threading.current_thread():  # a study collected in its own beat: no join
            thread.join(timeout=interval + 5)


class StorageUnreachableError(AutotweakError):
    """The storage stayed unreachable for longer than :func:`retrying` waits.

    Attributes:
        store: The storage, its password hidden.
        what: What could not be done (``"reporting step 3 of trial 2"``).
    """

    def __init__(self, store: str | None, what: str, waited: float, cause: BaseException) -> None:
        self.store = store
        self.what = what
        named = f"the storage {store}" if store else "the storage"
        super().__init__(
            f"{named} was unreachable for {waited:.0f} s while {what} "
            f"({type(_root(cause)).__name__}: {_first_line(_root(cause))})"
        )


_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` says the storage could not be reached (worth retrying), not that a write was bad.

    Optuna turns every database error met during a commit into a ``StorageInternalError``
    that blames invalid data ("e.g. exceeding max length"); the connection errors it wraps
    are told apart by the exception they were raised from.
    """
    if isinstance(exc, StorageUnreachableError):
        return False  # it has waited already
    if isinstance(exc, optuna.exceptions.StorageInternalError):
        # The connection error may sit below another: a query Optuna retries in the same
        # session after a dropped connection raises PendingRollbackError, raised while
        # handling the OperationalError.
        return any(_is_connection_error(link) for link in _chain(exc))
    return _is_connection_error(exc)


def _is_connection_error(exc: BaseException) -> bool:
    lost = isinstance(exc, _CONNECTION_ERRORS) or (
        isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated
    )
    return lost and not any(words in str(exc) for words in _REFUSALS)


# A server that refuses a connection in these words is up, and says what no retry changes:
# a database, user or password that is wrong in the URL.
_REFUSALS = ("does not exist", "password authentication failed", "no password supplied")


def _chain(exc: BaseException, limit: int = 10) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling, nearest first."""
    seen: BaseException | None = exc
    for _ in range(limit):
        if seen is None:
            return
        yield seen
        seen = seen.__cause__ or seen.__context__


def retrying(
    func: Callable[[], T],
    what: str,
    *,
    timeout: float | None = None,
    store: BaseStorage | str | None = None,
    stop: threading.Event | None = None,
) -> T:
    """Call ``func``, retrying with backoff while the storage is unreachable (a restart, say).

    A worker that gives up on the first dropped connection loses its place in the study;
    one that waits goes on where it was once the database is back. ``func`` must be safe
    to call again after a failed attempt. The outage is said (a warning) when it is met,
    once every :data:`STILL_UNREACHABLE_EVERY` seconds while it lasts, and when it ends.

    Args:
        func: The storage operation.
        what: What it does, for messages (``"loading the study"``).
        timeout: How long to keep trying, in seconds; :data:`RETRY_TIMEOUT` if ``None``.
        store: The storage (or its URL), named in messages.
        stop: Give up at once when this is set (a thread being stopped).

    Raises:
        StorageUnreachableError: If the storage is still unreachable after ``timeout``
            seconds (or once ``stop`` is set); it names the storage and ``what``.

    Example:
        >>> calls = []
        >>> def flaky() -> str:
        ...     calls.append(1)
        ...     if len(calls) < 2:
        ...         raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("restarting"))
        ...     return "done"
        >>> retrying(flaky, "reading", timeout=5)
        'done'
    """
    limit = RETRY_TIMEOUT if timeout is None else timeout
    said = _OutageLines(what)
    delay = 0.5
    started = time.monotonic()
    while True:
        try:
            result = func()
        except Exception as exc:
            if not is_transient(exc):
                raise
            CONTACT.lost()
            waited = time.monotonic() - started
            name = None if store is None else storage_name(store)
            if waited >= limit or (stop is not None and stop.is_set()):
                raise StorageUnreachableError(name, what, waited, exc) from exc
            said.failed(name, exc, waited, limit)
            pause = min(delay, limit - waited)
            if stop is not None:
                stop.wait(pause)
            else:
                time.sleep(pause)
            delay = min(delay * 2, 10.0)
        else:
            CONTACT.reached()
            said.answered(time.monotonic() - started)
            return result


class _OutageLines:
    """What one call of :func:`retrying` says of an outage: its start, once a minute, and its end.

    A retry every 10 s at most would be a line each (about sixteen for a two-minute
    restart); the tries between the lines are logged at debug level.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.name = ""
        self.said_at: float | None = None  # seconds into the outage of the latest line

    def failed(self, name: str | None, exc: BaseException, waited: float, limit: float) -> None:
        self.name = f" {name}" if name else ""
        error = type(_root(exc)).__name__
        if self.said_at is None:
            _log.warning(
                "the storage%s is unreachable while %s (%s); retrying for up to %.0f s",
                self.name,
                self.what,
                error,
                limit,
            )
        elif waited - self.said_at >= STILL_UNREACHABLE_EVERY:
            _log.warning(
                "the storage%s is still unreachable after %.0f s while %s (%s); retrying",
                self.name,
                waited,
                self.what,
                error,
            )
        else:
            _log.debug("the storage%s is unreachable while %s (%s)", self.name, self.what, error)
            return
        self.said_at = waited

    def answered(self, waited: float) -> None:
        if self.said_at is not None:
            _log.warning(
                "the storage%s answers again (unreachable for %.0f s while %s)", self.name, waited, self.what
            )


def _root(exc: BaseException) -> BaseException:
    """The database driver's error under SQLAlchemy's and Optuna's wrappers.

    Where the chain holds a lost connection, that one: Optuna's query run again after it
    raised a PendingRollbackError, which says nothing to a user.
    """
    if isinstance(exc, optuna.exceptions.StorageInternalError) and exc.__cause__ is not None:
        exc = next((link for link in _chain(exc) if _is_connection_error(link)), exc.__cause__)
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.orig is not None:
        return exc.orig
    return exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
