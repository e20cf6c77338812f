"""Bringing the tracker in line with Optuna, the coordination truth, after a crash.

A worker killed between telling Optuna and closing the trial's record leaves a record
open for a trial that is finished. Stale-trial detection cannot see it (the trial is not
running), so the study closes such records from what Optuna holds: state, value, curve.
A trial whose record was never opened (its worker killed before its writer opened it,
or the tracker away both times it was tried) gets one the same way, as its worker's close
would have written it (:mod:`autotweak.engine._closed`). A lost trial's record that the
stale-trial sweep closed without its learning curve (an earlier autotweak did so) gets the
curve Optuna holds here.

A trial whose worker is known to be gone is settled at once instead
(:mod:`autotweak.engine._lost_trials`), and the retries that killed workers did not queue
are queued (:mod:`autotweak.engine._lost_retries`).

Workers elsewhere may still be writing when this runs: a study opened while they run, and
a spot study closing while its instances shut down, whose workers tell their trials
interrupted and then close their records and queue them again. ``settle`` leaves alone the
trials that finished less than that long ago (the grace period): their records, curves
and retries are their workers' to write. A study's close queues missing retries with the
grace period in every case, not only when its executor's workers outlive it: a retry
queued there would run only on resume, whose opening queues it too, while one queued
under a live worker (an ``autotweak worker`` joined from elsewhere) would lack the
checkpoint that worker is uploading.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autotweak._trial_costs import trial_dollars
from autotweak.engine._closed import curve_points, optuna_record
from autotweak.engine._outage import clear_outage, say_caught_up
from autotweak.engine._stale import LOST_MACHINE, LOST_WORKER
from autotweak.engine._study import ATTR, config_of
from autotweak.engine._study_sessions import ran_on
from autotweak.engine._summary import attempts_of
from autotweak.exceptions import AutotweakError
from autotweak.spec import Experiment
from autotweak.tracking import RECONCILED_TAG, BaseTracker, TrialStart

__all__ = [
    "UNRECORDED",
    "close_from_optuna",
    "lost_trial_start",
    "reconcile",
    "finished_before",
]

_log = logging.getLogger(__name__)


def reconcile(
    study: optuna.Study, tracker: BaseTracker, metric: str, steps: int | None, *, settle: float = 0.0
) -> int:
    """Close the open records of finished trials and open the missing ones; return how many.

    Lost trials' curves are restored on the way (see the module's documentation).

    ``settle``: write only the records of trials finished at least this many seconds ago. A
    study opened while other workers may run passes the grace period, as does the close of
    one whose workers outlive their executor's run: a worker still alive has closed its
    trial's record by then, so this neither closes a record its worker is about to close
    nor makes a second one.
    """
    try:
        open_records = tracker.open_trials(study.study_name)
        recorded = tracker.recorded_trials(study.study_name)
    except Exception:
        _log.warning("could not list the trial records of '%s'", study.study_name, exc_info=True)
        return 0
    refused = _unrecorded(study)  # said once, when the tracker refused them: not tried again
    trials = study.get_trials(deepcopy=False)
    attempts = attempts_of(trials)  # a retry's charge may depend on its earlier attempts
    costs = trial_dollars(study.user_attrs, trials)  # a spot study's, once a session's close kept them
    settled = {t._trial_id: t for t in finished_before(trials, settle) if t._trial_id not in refused}
    missing = [t for i, t in settled.items() if recorded is not None and i not in recorded]
    elsewhere = open_records.keys() | {t._trial_id for t in missing}  # closed below, curve and all
    _restore_curves(
        study, tracker, metric, [t for i, t in settled.items() if _lost(t) and i not in elsewhere]
    )
    to_close = [(t, run_id) for trial_id, run_id in open_records.items() if (t := settled.get(trial_id))]
    record = functools.partial(
        _write_record, study, tracker, metric=metric, steps=steps, attempts=attempts, costs=costs
    )
    closed = sum(record(t, run_id) for t, run_id in to_close)
    opened = sum(record(t, None) for t in missing)
    say_caught_up(study, closed, opened)
    if recorded is not None and closed + opened == len(to_close) + len(missing):
        clear_outage(study)  # every record it owed is written
    return closed + opened


def finished_before(trials: list[FrozenTrial], settle: float) -> list[FrozenTrial]:
    """The finished trials among ``trials`` that finished at least ``settle`` seconds ago."""
    cutoff = datetime.datetime.now() - datetime.timedelta(seconds=settle)
    return [t for t in trials if t.state.is_finished() and (t.datetime_complete or cutoff) <= cutoff]


def close_from_optuna(
    study: optuna.Study, tracker: BaseTracker, trial: FrozenTrial, run_id: str, metric: str, steps: int | None
) -> bool:
    """Close ``trial``'s record ``run_id`` from what Optuna holds, as reconcile does; whether it was."""
    trials = study.get_trials(deepcopy=False)
    costs = trial_dollars(study.user_attrs, trials)
    return _write_record(
        study, tracker, trial, run_id, metric=metric, steps=steps, attempts=attempts_of(trials), costs=costs
    )


def _write_record(
    study: optuna.Study,
    tracker: BaseTracker,
    trial: FrozenTrial,
    run_id: str | None,
    *,
    metric: str,
    steps: int | None,
    attempts: Callable[[int], FrozenTrial | None],
    costs: Mapping[int, float],
) -> bool:
    """Close ``trial``'s record from Optuna, opening it first if ``run_id`` is ``None``; whether it was.

    A record that cannot be written is warned of and left: the study's other records, and
    the study itself, are still closed (the trial stays in Optuna, where its results are).
    One the tracker refuses for good (:meth:`~autotweak.tracking.BaseTracker.refused`) is
    noted on the study (:data:`UNRECORDED`) and not tried again; one it could not take now
    (a server away) is tried again when the study next opens or closes.
    """
    opening = run_id is None
    try:
        if run_id is None:
            run_id = _open_record(study, tracker, trial)
        tracker.end_trial(optuna_record(trial, run_id, metric, steps, attempts, costs=costs))
    except Exception as exc:
        if opening and run_id is not None and _kept_elsewhere(study, tracker, trial, run_id):
            return True
        refused = tracker.refused(exc)
        _log.warning(
            "could not write the record of trial %d of study '%s' from Optuna's trial (%s: %.300s); "
            "its results are in Optuna only%s",
            trial.number,
            study.study_name,
            type(exc).__name__,
            exc,
            "; the tracker refuses it, so it is not tried again" if refused else "; it is tried again later",
            exc_info=_log.isEnabledFor(logging.DEBUG),
        )
        if refused:
            _note_unrecorded(study, trial, f"{type(exc).__name__}: {exc}")
        return False
    return True


def _open_record(study: optuna.Study, tracker: BaseTracker, trial: FrozenTrial) -> str:
    """Open ``trial``'s missing record; the trial's one record, if its worker's opening landed meanwhile.

    That opening, late, may have looked for another record before this one was made (see
    :mod:`autotweak.engine._late`): both look once they have landed, and agree on the one
    kept (:meth:`~autotweak.tracking.BaseTracker.one_record`).
    """
    start = lost_trial_start(study, trial)
    run_id = tracker.start_trial(dataclasses.replace(start, tags={**start.tags, RECONCILED_TAG: "true"}))
    return tracker.one_record(study.study_name, trial._trial_id, run_id)


def _kept_elsewhere(study: optuna.Study, tracker: BaseTracker, trial: FrozenTrial, run_id: str) -> bool:
    """Whether record ``run_id``, which could not be written, was deleted for its worker's (closed by it)."""
    try:
        kept = tracker.find_trial(study.study_name, trial._trial_id)
    except Exception:  # the write's own error is the one said
        return False
    if kept is None or kept == run_id:
        return False
    _log.info("trial %d: its record %s was the second one of the trial; %s is it", trial.number, run_id, kept)
    return True


UNRECORDED = (
    "autotweak.unrecorded"  # study system attr: {Optuna trial id: why the tracker refused its record}
)


def _unrecorded(study: optuna.Study) -> set[int]:
    """Ids of the trials whose records the tracker refused for good."""
    noted = study._storage.get_study_system_attrs(study._study_id).get(UNRECORDED) or {}
    return {int(trial_id) for trial_id in noted}


def _note_unrecorded(study: optuna.Study, trial: FrozenTrial, reason: str) -> None:
    """Keep on the study that ``trial``'s record was refused, and why (a finished trial takes no attrs)."""
    storage = study._storage
    noted = dict(storage.get_study_system_attrs(study._study_id).get(UNRECORDED) or {})
    noted[str(trial._trial_id)] = reason[:500]
    storage.set_study_system_attr(study._study_id, UNRECORDED, noted)


def lost_trial_start(study: optuna.Study, trial: FrozenTrial) -> TrialStart:
    """The opening of a record for a trial whose worker never opened one, with the tags its worker's had."""
    attrs, study_attrs = trial.user_attrs, study.user_attrs
    experiment = _experiment_of(study_attrs, study.study_name)
    tags = {} if experiment is None else dict(experiment.tags)  # the spec's own, on every trial run
    if attrs.get(ATTR.ABLATION):
        tags[ATTR.ABLATION] = "true"
    if ATTR.SESSION in attrs:
        tags[ATTR.SESSION] = str(attrs[ATTR.SESSION])
    return TrialStart(
        study_name=study.study_name,
        study_run_id=study_attrs.get(ATTR.RUN_ID),
        number=trial.number,
        trial_id=trial._trial_id,
        config=_config_of(experiment, trial),
        params=dict(trial.params),
        attempt=int(attrs.get(ATTR.ATTEMPT, 1)),
        retry_of=attrs.get(ATTR.RETRY_OF),
        seed=None,  # its worker process's: Optuna does not keep it
        provenance=ran_on(study_attrs, attrs.get(ATTR.SESSION)),
        tags=tags,
    )


def _experiment_of(study_attrs: Mapping[str, Any], name: str) -> Experiment | None:
    """The study's spec, or ``None`` where it is not there or no longer reads (a space since removed)."""
    spec = study_attrs.get(ATTR.SPEC)
    if not spec:
        return None
    try:
        return Experiment.from_dict(spec, source=f"<study {name}>")
    except AutotweakError:
        return None


def _config_of(experiment: Experiment | None, trial: FrozenTrial) -> dict[str, Any]:
    """The config ``trial`` ran with, from the study's spec: its base and fixed values too.

    A param asked outside the space (ask/tell) is kept as it is; its params alone without the spec.
    """
    if experiment is None:
        return dict(trial.params)
    config = config_of(experiment, trial.params)
    config.update({k: v for k, v in trial.params.items() if k not in experiment.space})  # asked outside it
    return config


def _lost(trial: FrozenTrial) -> bool:
    """Failed with a curve, by a stale-trial sweep rather than by its worker (which says why otherwise)."""
    failure = trial.user_attrs.get(ATTR.FAILURE)
    lost = trial.state == TrialState.FAIL and failure in (None, LOST_WORKER, LOST_MACHINE)
    return lost and bool(trial.intermediate_values)


def _restore_curves(study: optuna.Study, tracker: BaseTracker, metric: str, lost: list[FrozenTrial]) -> None:
    """Write the curves of lost trials to their closed records (a tracker writes only the points it lacks)."""
    restored = 0
    for trial in lost:
        try:
            run_id = tracker.find_trial(study.study_name, trial._trial_id)
            if run_id is not None:
                tracker.log_steps(run_id, metric, curve_points(trial))
                restored += 1
        except Exception:
            _log.warning("could not restore the curve of lost trial %d", trial.number, exc_info=True)
    if restored:
        _log.info("restored the learning curves of %d lost trial(s) from Optuna's trials", restored)
