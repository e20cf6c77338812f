"""The private Optuna names of autotweak/_optuna_private.py still exist and behave as it relies on.

A failure here means the installed Optuna moved one of them: the message names it, the
Optuna version, and the module to update.
"""

from __future__ import annotations

import importlib
import inspect
import math
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from autotweak import _optuna_private
from autotweak._optuna_private import (
    heartbeat_ages,
    is_heartbeat_enabled,
    stale_trial_ids,
    tell,
    unbeating_trial_ids,
)

CHECKED = "5.0.0"


def _moved(what: str, detail: object) -> str:
    return (
        f"autotweak relies on Optuna's private {what}, which the installed Optuna "
        f"{optuna.__version__} no longer has as checked with {CHECKED} ({detail}); "
        "update autotweak/_optuna_private.py"
    )


def _private(module: str, name: str | None = None) -> Any:
    try:
        found = importlib.import_module(module)
        return found if name is None else getattr(found, name)
    except (ImportError, AttributeError) as exc:
        pytest.fail(_moved(module if name is None else f"{module}.{name}", exc))


def test_the_private_tell_takes_what_autotweak_passes() -> None:
    tell_with_warning = _private("optuna.study._tell", "_tell_with_warning")
    params = list(inspect.signature(tell_with_warning).parameters)
    wanted = ["study", "trial", "value_or_values", "state", "skip_if_finished"]
    assert params[:5] == wanted, _moved("_tell_with_warning's parameters", params)
    assert _optuna_private._TELL is tell_with_warning, "autotweak fell back to Study.tell"


def test_heartbeat_storages_are_what_autotweak_checks_for() -> None:
    base = _private("optuna.storages._heartbeat", "BaseHeartbeat")
    _private("optuna.storages._heartbeat", "is_heartbeat_enabled")
    for method in ("_get_stale_trial_ids", "record_heartbeat", "get_heartbeat_stale_trial_callback"):
        assert callable(getattr(base, method, None)), _moved(f"BaseHeartbeat.{method}", "absent")
    cached = optuna.storages._CachedStorage
    assert issubclass(RDBStorage, base) and issubclass(cached, base), _moved("BaseHeartbeat", "not a base")


def test_the_rdb_tables_have_the_columns_autotweak_reads() -> None:
    models = _private("optuna.storages._rdb.models")
    for model, columns in (
        ("TrialModel", ("trial_id", "study_id", "state")),
        ("TrialHeartbeatModel", ("trial_id", "heartbeat")),
    ):
        table = getattr(models, model, None)
        assert table is not None, _moved(f"models.{model}", "absent")
        missing = [c for c in columns if c not in table.__table__.columns]
        assert not missing, _moved(f"models.{model} columns", f"missing {missing}")


def _study(tmp_path: Path, name: str, **heartbeat: int) -> tuple[optuna.Study, RDBStorage]:
    rdb = RDBStorage(f"sqlite:///{tmp_path / name}.db", **heartbeat)  # type: ignore[arg-type]
    return optuna.create_study(storage=rdb, study_name=name), rdb


def _tell_all(study: optuna.Study) -> list[tuple[TrialState, TrialState, list[float] | None]]:
    """Tell one trial of each kind autotweak tells; what each call returned and what the trial holds."""
    told = []
    for value, state, steps in (
        (0.5, TrialState.COMPLETE, []),
        (None, TrialState.PRUNED, [0.7, 0.6]),
        (None, TrialState.FAIL, [0.9]),
    ):
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        for step, reported in enumerate(steps):
            trial.report(reported, step)
        returned = tell(study, trial, value, state)
        again = tell(study, trial, 0.1, TrialState.COMPLETE)  # already finished: skipped, as it holds
        stored = study.trials[trial.number]
        assert again == stored.state
        told.append((returned, stored.state, stored.values))
    trial = study.ask()
    with pytest.raises(ValueError, match="nan"):
        tell(study, trial, math.nan, TrialState.COMPLETE)
    return told


def test_tell_stores_what_study_tell_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private = _tell_all(_study(tmp_path, "private")[0])
    monkeypatch.setattr(_optuna_private, "_TELL", None)  # as on an Optuna without the private tell
    public = _tell_all(_study(tmp_path, "public")[0])
    assert (
        private
        == public
        == [
            (TrialState.COMPLETE, TrialState.COMPLETE, [0.5]),
            (TrialState.PRUNED, TrialState.PRUNED, [0.6]),
            (TrialState.FAIL, TrialState.FAIL, None),
        ]
    )


def _statements(tmp_path: Path, name: str) -> int:
    study, rdb = _study(tmp_path, name)
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    trial.report(0.5, 1)
    count = [0]

    def counted(*_: object) -> None:
        count[0] += 1

    sqlalchemy.event.listen(rdb.engine, "before_cursor_execute", counted)
    tell(study, trial, 0.5, TrialState.COMPLETE)
    return count[0]


def test_the_private_tell_still_saves_statements_over_study_tell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private = _statements(tmp_path, "private")
    monkeypatch.setattr(_optuna_private, "_TELL", None)
    public = _statements(tmp_path, "public")
    assert private < public, (
        f"Study.tell costs no more than the private tell ({public} SQL statements against {private}): "
        "use it, and drop _tell_with_warning from autotweak/_optuna_private.py"
    )


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_the_heartbeat_reads_answer_on_an_rdb_storage(tmp_path: Path) -> None:
    study, rdb = _study(tmp_path, "beats", heartbeat_interval=60, grace_period=120)
    beating, silent = study.ask(), study.ask()
    rdb.record_heartbeat(beating._trial_id)
    assert is_heartbeat_enabled(study._storage)
    assert stale_trial_ids(rdb, study._study_id) == []
    assert unbeating_trial_ids(rdb.engine, study._study_id) == {silent._trial_id}
    ages = heartbeat_ages(rdb.engine)
    assert ages.keys() == {beating._trial_id} and 0 <= ages[beating._trial_id] < 120
