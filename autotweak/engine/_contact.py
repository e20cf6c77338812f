"""Whether the storage has answered this process for long enough to judge heartbeats by."""

from __future__ import annotations

import logging
import threading
import time

__all__ = ["CONTACT"]

_log = logging.getLogger(__name__)


class _Contact:
    """When this process first reached the storage, or reached it again after finding it unreachable.

    A stale-trial sweep judges a trial by how long ago its worker last wrote a heartbeat.
    While the storage is down no worker can write one, so right after an outage every
    running trial looks stale; a sweep then would fail the trials of live workers. This
    process's sweeps wait instead until the storage has answered it for a whole grace
    period, in which every live worker has written a heartbeat again (it writes one every
    ``heartbeat_interval``, which is shorter). A worker that died meanwhile is failed that
    much later. Every failure counts: a storage operation that
    :func:`~autotweak.engine._unreachable.retrying` retries, and a heartbeat that could not be
    written (a worker in a long trial sweeps only between trials, but its heartbeat thread
    meets the outage).

    A process that has just started cannot know whether an outage ended just before: its
    first grace period of contact is not :meth:`steady` either, and
    :func:`~autotweak.engine._stale.fail_stale` judges only the trials that are surely lost
    then (see there).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lost_at: float | None = None
        self._back_at: float | None = None

    def lost(self) -> None:
        """A storage operation failed as an unreachable storage does."""
        with self._lock:
            if self._back_at is not None or self._lost_at is None:
                _log.info("the storage is unreachable: no trial is failed as stale until it answers again")
            self._lost_at = time.monotonic()
            self._back_at = None

    def reached(self) -> None:
        """A storage operation went through."""
        if self._back_at is not None:
            return  # the common case, without the lock
        with self._lock:
            if self._back_at is None:
                self._back_at = time.monotonic()

    def steady(self, period: float) -> bool:
        """Whether the storage has answered for ``period`` seconds since this process first reached it.

        Or since it last found it unreachable, if it has.
        """
        with self._lock:
            return self._back_at is not None and time.monotonic() - self._back_at >= period

    def saw_outage(self) -> bool:
        """Whether this process has found the storage unreachable: its unsteady period follows an outage."""
        with self._lock:
            return self._lost_at is not None


CONTACT = _Contact()
