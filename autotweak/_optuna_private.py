"""Every private name of Optuna's that autotweak relies on, in one place, and why.

Optuna offers no public route to any of these; the rest of autotweak imports no private
Optuna module and goes through this one. ``tests/test_optuna_private.py`` checks each name
and the shape autotweak relies on against the installed Optuna, and says what moved.
Checked with Optuna 5.0.0 (``scripts/constraints.txt``).

- ``optuna.study._tell._tell_with_warning``: what ``Study.tell`` and ``Study.optimize``
  both call to finish a trial. ``Study.tell`` then reads the trial back for a copy that
  autotweak does not use: on an RDB storage, 16 SQL statements per tell instead of 10 (a
  trial with one param and one intermediate value), the largest cost the engine adds to a
  bare ``study.optimize`` loop. Its warn-instead-of-raise handling of bad values applies
  only to a tell without a state; autotweak always names the state, so both calls behave
  alike (a non-finite value told COMPLETE raises ``ValueError`` in both). An Optuna without
  it gets ``Study.tell`` (see :func:`tell`): the same trial, one read slower.
- ``optuna.storages._heartbeat``: ``BaseHeartbeat`` (the storages that record heartbeats:
  RDB and the cache Optuna puts around it), ``is_heartbeat_enabled``, and the method
  ``BaseHeartbeat._get_stale_trial_ids`` (the running trials whose heartbeat is older than
  the grace period). Optuna's one public heartbeat function, ``fail_stale_trials``, fails
  those trials without saying why; autotweak's sweep (``engine/_stale.py``) replaces it.
- ``optuna.storages._rdb.models``: the tables of an RDB storage, read directly for what
  no storage method answers: how long ago each running trial beat (by the database's
  clock), and which running trials never beat (Optuna's sweep never fails those).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
import sqlalchemy
from optuna.trial import TrialState

try:
    from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
except ImportError as exc:  # a later Optuna moved them: say what to install, not where it broke
    raise ImportError(
        f"autotweak needs Optuna's heartbeat storages (optuna.storages._heartbeat), which Optuna "
        f"{optuna.__version__} does not have; autotweak is checked with Optuna 5.0.0: install it "
        "(pip install 'optuna==5.0.*')"
    ) from exc

__all__ = [
    "BaseHeartbeat",
    "heartbeat_ages",
    "is_heartbeat_enabled",
    "stale_trial_ids",
    "tell",
    "unbeating_trial_ids",
]


_Tell = Callable[..., tuple[TrialState, Any, Any]]


def _private_tell() -> _Tell | None:
    try:
        from optuna.study._tell import _tell_with_warning
    except ImportError:  # a later Optuna: Study.tell does the same, one read slower
        return None
    return _tell_with_warning


_TELL = _private_tell()


def tell(study: optuna.Study, trial: optuna.Trial, value: float | None, state: TrialState) -> TrialState:
    """Finish ``trial`` as ``study.tell(trial, value, state, skip_if_finished=True)`` does.

    Returns:
        The state the trial holds now: ``state``, or the one it had if it had already
        finished (another process failed it meanwhile).

    Raises:
        ValueError: As ``Study.tell`` does (a non-finite or missing value told COMPLETE).
        optuna.exceptions.UpdateFinishedTrialError: If another process finished the trial
            between the read and the write.
    """
    if _TELL is None:
        return study.tell(trial, value, state, skip_if_finished=True).state
    told, _, _ = _TELL(study, trial, value, state, skip_if_finished=True)
    return told


def stale_trial_ids(storage: BaseHeartbeat, study_id: int) -> list[int]:
    """Ids of the study's running trials whose heartbeat is older than the grace period."""
    return storage._get_stale_trial_ids(study_id)


def heartbeat_ages(engine: sqlalchemy.Engine) -> dict[int, float]:
    """Seconds since each running trial's last heartbeat, of every study, by the database's clock."""
    from optuna.storages._rdb import models

    beats = sqlalchemy.select(models.TrialHeartbeatModel.trial_id, models.TrialHeartbeatModel.heartbeat)
    running = beats.join(
        models.TrialModel, models.TrialModel.trial_id == models.TrialHeartbeatModel.trial_id
    ).where(models.TrialModel.state == TrialState.RUNNING)
    with engine.connect() as conn:
        now = conn.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar_one().replace(tzinfo=None)
        rows = conn.execute(running).all()
    return {int(trial_id): (now - beat.replace(tzinfo=None)).total_seconds() for trial_id, beat in rows}


def unbeating_trial_ids(engine: sqlalchemy.Engine, study_id: int) -> set[int]:
    """Ids of the study's running trials that have recorded no heartbeat."""
    from optuna.storages._rdb import models

    trial, beat = models.TrialModel, models.TrialHeartbeatModel
    query = sqlalchemy.select(trial.trial_id).where(
        trial.study_id == study_id,
        trial.state == TrialState.RUNNING,
        ~sqlalchemy.exists().where(beat.trial_id == trial.trial_id),
    )
    with engine.connect() as conn:
        return {int(row[0]) for row in conn.execute(query)}
