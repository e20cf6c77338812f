"""Trial records a session's workers could not write: kept on the study, summed by its close.

A worker whose tracking server does not answer goes on without its trials' records and
counts them (:attr:`~autotweak.engine._writer.RecordWriter.dropped`). Local worker
processes hand that count to their study's close with their results; a spot instance's
worker ends apart from its launcher, whose close is what the user reads. So each worker
process of a session keeps its count on the study, as a study system attr of its own
(:data:`DROPPED` + session + host and process id): ``None`` from its start, its count as
it exits. A close that has no results to count sums its session's
(:func:`records_dropped`), waiting a bounded time for the workers still closing.

Example:
    >>> from autotweak.engine._storage import make_storage
    >>> study = optuna.create_study(study_name="s", storage=make_storage("memory"))
    >>> worker = DroppedCount(study, "abc")
    >>> worker.started()
    >>> records_dropped(study, "abc", wait=0.0) is None  # it has not said its count yet
    True
    >>> worker.ended(2)
    >>> records_dropped(study, "abc", wait=0.0)
    2
"""

from __future__ import annotations

import logging
import os
import socket
import time

import optuna

__all__ = ["DROPPED", "DroppedCount", "records_dropped"]

_log = logging.getLogger(__name__)

# Study system attr, + "<session>.<host>:<pid>": None while that worker process runs, then
# how many trial records it could not write (its tracker did not answer).
DROPPED = "autotweak.records_dropped."
_POLL_S = 0.2
# A close that waits at all waits at least this long: a worker on a busy machine takes seconds
# past its last trial to see the budget spent and close its record writer.
_CLOSING_S = 15.0


class DroppedCount:
    """One worker process's count of the trial records it could not write, kept on its study.

    Kept only where a close may need it: a tracker to write to, and a session to count for.
    A storage that fails the write loses the count, not the worker: the close then says
    that records are missing without saying how many.

    Args:
        study: The study the worker runs trials of.
        session: The session whose trials these are (``None``: nothing is kept).
    """

    def __init__(self, study: optuna.Study, session: str | None) -> None:
        self._study = study
        self._key = None if session is None else f"{DROPPED}{session}.{socket.gethostname()}:{os.getpid()}"

    def started(self) -> None:
        """Say that this worker runs: a close waits for its count."""
        self._keep(None)

    def ended(self, dropped: int) -> None:
        """Say how many trial records this worker could not write, as it exits."""
        self._keep(dropped)

    def _keep(self, value: int | None) -> None:
        if self._key is None:
            return
        study = self._study
        try:
            study._storage.set_study_system_attr(study._study_id, self._key, value)
        except Exception as exc:  # the count is the close's to say; the worker's trials matter more
            _log.debug("could not keep %s = %s on study '%s': %s", self._key, value, study.study_name, exc)


def records_dropped(study: optuna.Study, session: str | None, *, wait: float) -> int | None:
    """How many trial records the worker processes of ``session`` could not write, summed.

    Waits for those still running to say theirs (a spot instance's worker closes its last
    trial as its launcher closes the study): up to ``wait`` seconds, and at least 15 unless
    ``wait`` is 0. ``None`` if any did not say within it (killed, say: what it lacks is not
    known), or none kept a count.
    """
    if session is None:
        return None
    prefix = f"{DROPPED}{session}."
    deadline = time.monotonic() + (max(wait, _CLOSING_S) if wait > 0 else 0.0)
    while True:
        try:
            attrs = study._storage.get_study_system_attrs(study._study_id)
        except Exception as exc:  # the storage is away: the count is not known
            _log.debug("could not read the workers' counts of unwritten records: %s", exc)
            return None
        counts = [v for k, v in attrs.items() if k.startswith(prefix)]
        if counts and all(isinstance(v, int) for v in counts):
            return sum(int(v) for v in counts)
        if not counts or time.monotonic() >= deadline:
            _log.debug("%d worker(s) of session %s did not say their count", counts.count(None), session)
            return None
        time.sleep(_POLL_S)
