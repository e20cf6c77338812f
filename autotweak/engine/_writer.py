"""Closing trial records off the worker's critical path.

A trial's record is closed with two round trips to the tracker (the batched metrics,
then the final status). A worker waiting for them before asking for its next trial
spends tens of milliseconds per trial doing nothing; on a tracking server shared by
many workers, more. The writer does them on a thread of its own, in order, while the
next trial runs. Optuna has already been told the outcome by then: it stays the truth,
and a record the writer could not close is closed from it when the study ends
(:func:`autotweak.engine._reconcile.reconcile`).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["RecordWriter"]

_log = logging.getLogger(__name__)


class RecordWriter:
    """Runs record writes one at a time, in submission order, on one background thread.

    Args:
        limit: Writes that may wait at once; the next :meth:`submit` waits for the
            oldest, so a slow tracker slows the worker down instead of piling up.
    """

    def __init__(self, limit: int = 4) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="autotweak-records")
        self._pending: deque[Future[None]] = deque()
        self._limit = limit

    def submit(self, write: Callable[[], None], what: str) -> None:
        """Queue ``write``; a failure is logged (as ``what``), never raised."""
        while len(self._pending) >= self._limit:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(_logged, write, what))

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
