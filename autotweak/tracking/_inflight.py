"""Metric points, and trial records' openings, this process has sent to MLflow and not yet heard back about.

A write left waiting out MLflow's retries on a tracking server that died (the record
writer stops waiting for it after seconds; see :mod:`autotweak.engine._writer`) goes on
alone, and lands if the server answers again within those minutes: after the study, or a
resume in the same process, has written the same steps from Optuna's trials. MLflow keeps
one of two points that agree in key, step, value and timestamp, and both of two that do
not: a catch-up that stamped its points otherwise would leave a step twice. So a catch-up
writes, for each point that a write under way sends too, that write's point. And a record
whose opening is under way counts as there: opened again, the trial would have two.

This covers the writes of this process only. Another's lands after a catch-up here too:
an ``autotweak worker`` joined from elsewhere (or a spot instance's) that keeps running
trials while its opening of a record waits out MLflow's retries, when the study's close
(or a resume) writes the records from Optuna's trials before that opening's next retry;
or the tracking helper process (:mod:`autotweak.tracking._offload`). A local worker
process cannot: it ends before its study closes, and a write under way ends with it.
Such an opening and the catch-up's, each looking for the other once landed, keep one
record of the trial (:func:`autotweak.engine._late.open_record`). A curve flush from another process
keeps its points' stamps on the Optuna trial before it is sent, and so does a trial's
close for its points (those after its last flush), before the trial is told; a catch-up
stamps those steps alike (:func:`autotweak.engine._reconcile.reconcile`): MLflow keeps one
point each.

Example:
    >>> from mlflow.entities import Metric
    >>> sent = Metric("loss", 0.5, 1000, 2)
    >>> with IN_FLIGHT.sending("run-1", [sent]):
    ...     same_points(IN_FLIGHT.of("run-1"), [Metric("loss", 0.5, 9999, 2)])[0].timestamp
    1000
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from mlflow.entities import Metric

__all__ = ["IN_FLIGHT", "InFlight", "Sent", "same_points"]

Sent = dict[tuple[str, int], Metric]  # points under way, by key and step


class InFlight:
    """The metric points, and the trial records' openings, of the writes under way in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._writes: dict[int, tuple[str, Sequence[Metric]]] = {}
        self._openings: dict[int, tuple[str, int]] = {}  # (study, Optuna trial id)
        self._ids = itertools.count()

    @contextmanager
    def sending(self, run_id: str, metrics: Sequence[Metric]) -> Iterator[None]:
        """Hold ``metrics`` as under way to run ``run_id`` until the block ends (answered, or failed)."""
        if not metrics:
            yield
            return
        with self._held(self._writes, (run_id, metrics)):
            yield

    @contextmanager
    def opening(self, study_name: str, trial_id: int) -> Iterator[None]:
        """Hold the opening of trial ``trial_id``'s record as under way until the block ends.

        One that lands late is the trial's record: a catch-up must not open a second one.
        """
        with self._held(self._openings, (study_name, trial_id)):
            yield

    def openings(self, study_name: str) -> set[int]:
        """The Optuna ids of the trials of ``study_name`` whose record's opening is under way."""
        with self._lock:
            return {trial_id for study, trial_id in self._openings.values() if study == study_name}

    @contextmanager
    def _held(self, table: dict[int, Any], value: Any) -> Iterator[None]:
        key = next(self._ids)
        with self._lock:
            table[key] = value
        try:
            yield
        finally:
            with self._lock:
                del table[key]

    def of(self, run_id: str) -> Sent:
        """The points of the writes under way to run ``run_id``, by key and step.

        Taken before the run's points are read: a write that lands between the two is then
        still among them, and written again as it is (MLflow keeps it once).
        """
        with self._lock:
            return {(m.key, m.step): m for run, ms in self._writes.values() if run == run_id for m in ms}


def same_points(sent: Sent, metrics: Sequence[Metric]) -> list[Metric]:
    """``metrics``, each of the key and step of a point in ``sent`` (:meth:`InFlight.of`) as that point."""
    return [sent.get((m.key, m.step), m) for m in metrics]


IN_FLIGHT = InFlight()  # one per process: a write outlives the tracker (and the study) that sent it
