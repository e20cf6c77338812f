"""Opening and closing trial records off the worker's critical path.

A trial's record is opened with one round trip to the tracker and closed with two (the
batched metrics, then the final status). A worker waiting for them spends tens of
milliseconds per trial doing nothing; on a tracking server shared by many workers,
more. The writer does them on a thread of its own, in order: the opening while the
trial starts, the closing while the next trial runs. Optuna has already been told the
outcome by then: it stays the truth, and a record the writer could not close is closed
from it when the study ends (:func:`autotweak.engine._reconcile.reconcile`). A record
that could not be opened is opened again when the trial ends.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["RecordWriter"]

T = TypeVar("T")

_log = logging.getLogger(__name__)


class RecordWriter:
    """Runs record writes one at a time, in submission order, on one background thread.

    A write that keeps this process's CPU busy (MLflow's client on a local SQLite store)
    gains nothing on a thread: it holds the GIL, and the trial's thread waits for it in
    slices of the interpreter's switch interval. Such writes run on the caller's thread,
    with the same failure handling; ``threaded`` says, write by write, which kind the
    tracker does now. Such a write may overtake writes still queued on the thread: they
    are another trial's, or the opening of its own record, which its closing waits for.

    Args:
        limit: Writes that may wait at once; the next :meth:`submit` or :meth:`call` waits for the
            oldest, so a slow tracker slows the worker down instead of piling up.
        threaded: Whether the next write goes to the background thread (always, by default).
    """

    def __init__(self, limit: int = 4, threaded: Callable[[], bool] = lambda: True) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="autotweak-records")
        self._pending: deque[Future[Any]] = deque()
        self._limit = limit
        self._threaded = threaded

    def submit(self, write: Callable[[], None], what: str) -> None:
        """Queue ``write``; a failure is logged (as ``what``), never raised."""
        if not self._threaded():
            _logged(write, what)
            return
        self._wait_for_room()
        self._pending.append(self._pool.submit(_logged, write, what))

    def call(self, func: Callable[[], T]) -> Callable[[], T]:
        """Queue ``func``; return a function that waits for its result (or raises its error)."""
        if not self._threaded():
            return _done(func)
        self._wait_for_room()
        future: Future[T] = self._pool.submit(func)
        self._pending.append(future)
        return lambda: future.result()

    def _wait_for_room(self) -> None:
        self._wait_until(self._limit - 1)

    def wait(self) -> None:
        """Wait until every write queued so far is done."""
        self._wait_until(0)

    def _wait_until(self, pending: int) -> None:
        while len(self._pending) > pending:
            with contextlib.suppress(Exception):  # a call's error goes to whoever waits for it
                self._pending.popleft().result()

    def close(self) -> None:
        """Wait until every queued write is done."""
        self._pool.shutdown(wait=True)
        self._pending.clear()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _logged(write: Callable[[], None], what: str) -> None:
    try:
        write()
    except Exception:
        _log.warning(
            "could not write %s; it is closed from Optuna's record when the study ends", what, exc_info=True
        )


def _done(func: Callable[[], T]) -> Callable[[], T]:
    """``func`` run now, as a function that gives its result (or raises its error) when asked."""
    try:
        result = func()
    except Exception as exc:
        error = exc

        def fail() -> T:
            raise error

        return fail
    return lambda: result
