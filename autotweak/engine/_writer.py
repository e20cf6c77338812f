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

import atexit
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future
from typing import Any, TypeVar

from autotweak.exceptions import TrackingError

__all__ = ["RecordWriter", "WriteDropped"]

T = TypeVar("T")

_log = logging.getLogger(__name__)
# What becomes of a trial's record that could not be written: the study's close writes it.
_CLOSED_LATER = "it is closed from Optuna's record when the study ends"

_STALLED_S = 5.0  # a write under way (or waited for) this long: the writer asks whether the tracker answers
_ASK_AGAIN_S = 10.0  # while it does not, how often it is asked again


class RecordWriter:
    """Runs record writes one at a time, in submission order, on one background thread.

    A write that keeps this process's CPU busy (MLflow's client on a local SQLite store)
    gains nothing on a thread: it holds the GIL, and the trial's thread waits for it in
    slices of the interpreter's switch interval. Such writes run on the caller's thread,
    with the same failure handling; ``threaded`` says, write by write, which kind the
    tracker does now. Such a write may overtake writes still queued on the thread: they
    are another trial's, or the opening of its own record, which its closing waits for.

    A tracker that does not answer makes each write wait out its client's retries (MLflow's:
    four minutes). When a write fails, has been under way for seconds (while the trial
    runs on: a trial of an hour is told within seconds, not at its end), or keeps the
    worker (or :meth:`close`) waiting for seconds, ``unreachable`` asks the tracker once
    (one quick request). While it says why
    it cannot be reached, logged once, writes are dropped, it is asked again every few
    seconds, and the write under way is not waited for (its thread is a daemon's): the
    study writes the missing records from Optuna's when it closes or opens again, and its
    close warns of those it could not write then. ``on_change`` is told when the tracker
    stops, or starts again, answering; :attr:`dropped` counts the records not written meanwhile.

    Args:
        limit: Writes that may wait at once; the next :meth:`submit` or :meth:`call` waits for the
            oldest, so a slow tracker slows the worker down instead of piling up.
        threaded: Whether the next write goes to the background thread (always, by default).
        unreachable: Why the tracker cannot be reached now, or ``None``
            (:meth:`~autotweak.tracking.BaseTracker.unreachable`).
        on_change: Called with why the tracker does not answer when it is found so, and with
            ``None`` when it answers again (by default, logged at info level).
    """

    def __init__(
        self,
        limit: int = 4,
        threaded: Callable[[], bool] = lambda: True,
        unreachable: Callable[[], str | None] = lambda: None,
        on_change: Callable[[str | None], None] | None = None,
    ) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = queue.SimpleQueue()
        self._pending: deque[Future[Any]] = deque()
        self._limit = limit
        self._threaded = threaded
        self._unreachable = unreachable
        self._on_change = on_change or _said
        self._tally = threading.Lock()
        self._records: set[Future[Any]] = set()  # records queued or under way
        self._dropped = 0  # records not written: the tracker did not answer
        self._lost: str | None = None  # why, as the tracker said when the last was dropped
        self._closing = False  # a tracker found down now is said by the study's close, not on_change
        self._down: str | None = None  # why the tracker did not answer when last asked
        self._asked = 0.0  # when it was last asked (time.monotonic())
        self._failed = False  # a write failed since the tracker was last asked
        self._asking = threading.RLock()  # the writer's thread, its watch and the caller ask
        self._watching = threading.Condition()
        self._under_way: tuple[int, float] | None = None  # the write under way: its serial, when it began
        self._serial = 0
        self._watch_idle = False  # the watch waits for a write to begin (else, for a write's deadline)
        self._thread = threading.Thread(target=self._run, name="autotweak-records", daemon=True)
        self._thread.start()
        watch = threading.Thread(target=self._watch, name="autotweak-records-watch", daemon=True)
        watch.start()
        atexit.register(self.close)  # a daemon's writes would die with the interpreter: they finish first

    @property
    def dropped(self) -> int:
        """Records (:meth:`submit`) not written because the tracker did not answer, or still under way."""
        with self._tally:
            return self._dropped + len(self._records)

    @property
    def lost(self) -> str | None:
        """Why records were dropped (:attr:`dropped`), as the tracker said; ``None`` if none were."""
        return self._lost if self.dropped else None

    def submit(self, write: Callable[[], None], what: str, *, then: str = _CLOSED_LATER) -> None:
        """Queue ``write``; a failure is logged (as ``what``, and ``then``: what comes of it), not raised."""
        if not self._threaded():
            self._count(self._logged(write, what, then))
        elif self._room():
            future = self._put(lambda: self._logged(write, what, then))
            with self._tally:
                self._records.add(future)
            future.add_done_callback(self._settled)
            self._pending.append(future)
        else:
            self._count(True)

    def _settled(self, future: Future[bool]) -> None:
        """Count a record that ended without being written (dropped, or cut off and failed)."""
        with self._tally:
            self._records.discard(future)
        self._count(future.cancelled() or future.exception() is not None or future.result())

    def _count(self, dropped: bool) -> None:
        if dropped:
            with self._tally:
                self._dropped += 1
                self._lost = self._down or self._lost

    def call(self, func: Callable[[], T]) -> Callable[[], T]:
        """Queue ``func``; return a function that waits for its result (or raises its error).

        That function raises :class:`WriteDropped` when ``func`` was dropped, or has kept it
        waiting for seconds on a tracker that does not answer.
        """
        if not self._threaded():
            return _done(lambda: self._guarded(func))
        if not self._room():
            return _done(lambda: _raise(WriteDropped(str(self._down))))
        future: Future[T] = self._put(func)
        self._pending.append(future)
        return lambda: self._result(future)

    def _result(self, future: Future[T]) -> T:
        """``future``'s result; :class:`WriteDropped` once it waited seconds on a tracker that is down."""
        while True:
            try:
                return future.result(timeout=_STALLED_S)
            except futures.TimeoutError:  # it may be waiting out retries on a dead tracker
                if self._stalled():
                    self._drop()
                    raise WriteDropped(self._down) from None
            except futures.CancelledError:  # dropped while it waited: the tracker did not answer
                raise WriteDropped(str(self._down)) from None

    def _room(self) -> bool:
        """Wait until another write may be queued; ``False``: drop it, the tracker does not answer."""
        if not self._is_down():
            self._wait_until(self._limit - 1)
        return self._down is None

    def _put(self, func: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        self._queue.put((func, future))
        return future

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            self._run_one(*item)
            del item  # not kept while the next is waited for: its closure may hold a study dropped since
        with self._watching:
            self._serial = -1  # the writer is closed: the watch ends
            self._watching.notify()

    def _run_one(self, func: Callable[[], Any], future: Future[Any]) -> None:
        if not future.set_running_or_notify_cancel():  # dropped while it waited
            return
        with self._watching:
            self._serial += 1
            self._under_way = (self._serial, time.monotonic())
            if self._watch_idle:
                self._watching.notify()
        try:
            future.set_result(self._guarded(func))
        except BaseException as exc:
            future.set_exception(exc)
        finally:
            with self._watching:
                self._under_way = None

    def _watch(self) -> None:
        """Ask the tracker once about each write under way for seconds: nobody may wait for it.

        A trial's record closes while the next trial runs; a trial of an hour waits for no
        write until its own record. Without the watch, it would be told at its end.
        """
        asked = 0
        while (stalled := self._next_stalled(asked)) is not None:
            asked = stalled
            self._stalled()

    def _next_stalled(self, asked: int) -> int | None:
        """Wait until a write other than ``asked`` has been under way for seconds: its serial.

        ``None`` once the writer is closed.
        """
        with self._watching:
            while self._serial >= 0:
                under_way = self._under_way
                self._watch_idle = under_way is None or under_way[0] == asked
                if under_way is None or self._watch_idle:
                    self._watching.wait()
                    continue
                left = under_way[1] + _STALLED_S - time.monotonic()
                if left <= 0:
                    return under_way[0]
                self._watching.wait(left)
        return None

    def _guarded(self, func: Callable[[], T]) -> T:
        """``func``'s result; a :class:`TrackingError` without running it while the tracker is down."""
        if self._failed:
            self._failed = False
            self._ask()
        if self._is_down():
            raise WriteDropped(str(self._down))
        try:
            return func()
        except BaseException:
            self._failed = True
            raise

    def _logged(self, write: Callable[[], None], what: str, then: str) -> bool:
        """Run ``write``; whether it was dropped, the tracker not answering."""
        try:
            self._guarded(write)
        except WriteDropped:
            return True
        except Exception:
            self._failed = False
            self._ask()  # a tracker that does not answer is said once, not with each write's traceback
            if self._down is not None:
                return True
            _log.warning("could not write %s; %s", what, then, exc_info=True)
        return False

    def _is_down(self) -> bool:
        """Whether the tracker did not answer, asked again once it was asked long enough ago."""
        if self._down is not None and time.monotonic() - self._asked >= _ASK_AGAIN_S:
            self._ask()
        return self._down is not None

    def _stalled(self) -> bool:
        """A write is taking seconds: ask the tracker, unless it was found down lately; whether it is down."""
        with self._asking:
            if not self._is_down():
                self._ask()
            return self._down is not None

    def _ask(self) -> None:
        """Ask the tracker whether it answers; tell ``on_change`` when that changed."""
        with self._asking:
            down = self._unreachable()
            self._asked = time.monotonic()
            changed = (down is None) != (self._down is None)
            if down is not None:
                self._lost = down
            self._down = down
            if changed and not (self._closing and down is not None):  # back: said, at the close too
                try:
                    self._on_change(down)
                except Exception:  # saying so must not stop the writes
                    _log.warning(
                        "could not say that the tracker is %s", "down" if down else "back", exc_info=True
                    )

    def wait(self) -> None:
        """Wait until every write queued so far is done (or dropped: the tracker does not answer)."""
        self._wait_until(0)

    def _wait_until(self, pending: int) -> None:
        while len(self._pending) > pending:
            try:
                self._pending[0].result(timeout=_STALLED_S)
            except futures.TimeoutError:  # a write this slow may be waiting out retries on a dead tracker
                if self._stalled():
                    self._drop()
                continue
            except Exception:  # a call's error goes to whoever waits for it
                pass
            if self._pending:
                self._pending.popleft()

    def _drop(self) -> None:
        """Drop the queued writes; the one under way goes on alone, and ends with this process."""
        for future in self._pending:
            future.cancel()
        self._pending.clear()

    def close(self) -> None:
        """Wait until every queued write is done, unless the tracker does not answer: then drop them.

        A tracker found down only now is not told to ``on_change``: what ends next (the
        study's close, a joined worker) says what its records lack.
        """
        atexit.unregister(self.close)
        self._closing = True
        if any(not f.done() for f in self._pending):
            self._stalled()
        if self._down is None:
            self._wait_until(0)
        self._drop()
        self._queue.put(None)
        if self._down is None:
            self._thread.join()

    def let_go(self) -> None:
        """End the writer's threads once the writes queued are done, waiting for none (see ``close``).

        For a study dropped unclosed, from the garbage collector's finalizer: it may not block.
        With no write left to do, Python's exit no longer waits for it (nor keeps it). Writes
        after it (the study's close as Python exits) are made on the caller's thread.
        """
        self._threaded = lambda: False
        self._queue.put(None)
        if all(future.done() for future in self._pending):
            atexit.unregister(self.close)

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WriteDropped(TrackingError):
    """A write not tried: the tracker does not answer."""


def _said(down: str | None) -> None:
    """Log (info) that writes are dropped while the tracker does not answer, or are written again."""
    if down is not None:
        _log.info(
            "trial records are not written while the tracker does not answer (%s); they are written "
            "from Optuna's trials when the study closes or opens again",
            down,
        )
    else:
        _log.info("the tracker answers again; trial records are written again")


def _raise(error: Exception) -> Any:
    raise error


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
