"""A trial record whose opening lands late: after its trial ended in Optuna.

A worker opens a trial's record on its record writer (:mod:`autotweak.engine._writer`)
while the trial starts. Against a tracking server that died, the opening waits out MLflow's
retries (minutes) on the writer's thread, and the writer stops waiting for it: the trial's
close is dropped, and a catch-up (the study's close, a resume) writes the record from
Optuna's trial once the server answers. A catch-up does not open a second record for an
opening under way in its own process (:mod:`autotweak.tracking._inflight`): that opening,
landing after it, is the trial's record, which nothing would close until the study is
next opened or closed. The MLflow UI would show a trial RUNNING that ended long ago.

A catch-up in another process cannot see the opening under way (a joined worker's, say):
it opens the trial's record itself. Each of the two, once landed, looks for the other
(:meth:`~autotweak.tracking.BaseTracker.one_record`); both keep the same one, the
worker's, and delete the other, so the last to look leaves one record, whichever order
they landed and looked in. A catch-up that was closing the record deleted under it leaves
it to the worker's opening, which closes its own as below.

An opening that lands after its trial finished in Optuna closes its record from
Optuna's trial, as the catch-up would have. A close of the trial's own that was still
queued behind it writes only what the record lacks (a record closed by a tracker that did
not open it, :mod:`autotweak.tracking._mlflow_catchup`), so nothing is written twice.
"""

from __future__ import annotations

import logging
import time

import optuna

from autotweak.engine._reconcile import close_from_optuna
from autotweak.tracking import BaseTracker, TrialStart

__all__ = ["LATE_S", "open_record"]

_log = logging.getLogger(__name__)

# An opening that lands this long after its trial began may have outlived the trial: Optuna is
# asked whether it ended (a healthy opening takes milliseconds, and a trial this short is rare).
LATE_S = 1.0


def open_record(
    study: optuna.Study,
    tracker: BaseTracker,
    start: TrialStart,
    *,
    since: float,
    metric: str,
    steps: int | None,
    close: bool = True,
) -> str:
    """Open the record of the trial that began at ``since`` (``time.monotonic()``); return its id.

    One that lands late may be the trial's second record if a catch-up in another process
    opened one meanwhile: the trial keeps one of the two (its worker's), and its id is
    returned. One that lands after the trial finished in Optuna is closed from Optuna's
    trial (see the module's documentation), unless ``close`` is false: the trial's own
    close comes next.
    """
    opened = tracker.start_trial(start)
    if time.monotonic() - since < LATE_S:
        return opened
    run_id = _one_record(tracker, start, opened)
    if run_id == opened and close:
        _close_if_finished(study, tracker, start, run_id, metric, steps)
    return run_id


def _one_record(tracker: BaseTracker, start: TrialStart, opened: str) -> str:
    """The trial's record: ``opened``, unless a catch-up in another process opened one meanwhile."""
    try:
        return tracker.one_record(start.study_name, start.trial_id, opened)
    except Exception as exc:  # kept: a second record is better than none
        _log.warning(
            "trial %d: its record opened late, and whether another process opened one meanwhile could not "
            "be read (%s: %.200s)",
            start.number,
            type(exc).__name__,
            exc,
        )
        return opened


def _close_if_finished(
    study: optuna.Study, tracker: BaseTracker, start: TrialStart, run_id: str, metric: str, steps: int | None
) -> None:
    """Close ``run_id`` from Optuna's trial if the trial has finished; a failure is logged, not raised."""
    try:
        trial = study._storage.get_trial(start.trial_id)
    except Exception as exc:  # the study's next opening or close closes it
        _log.warning(
            "trial %d: its record opened late, and whether the trial ended could not be read (%s: %.200s); "
            "the record is closed from Optuna's trial when the study closes or opens again",
            start.number,
            type(exc).__name__,
            exc,
        )
        return
    if trial.state.is_finished() and close_from_optuna(study, tracker, trial, run_id, metric, steps):
        _log.info(
            "trial %d: its record opened after the trial ended, and was closed from Optuna's", start.number
        )
