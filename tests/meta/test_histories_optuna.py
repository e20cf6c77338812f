"""Histories from a real Optuna SQLite storage: complete, pruned, failed, running, waiting."""

from __future__ import annotations

import logging

import optuna
import pytest

from autotweak.meta import HistoryError, read_optuna
from autotweak.space import SearchSpace
from tests.helpers import silent_postgres

SPACE = SearchSpace.from_dict(
    {
        "lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True},
        "units": {"type": "int", "low": 8, "high": 64},
        "act": {"type": "categorical", "choices": ["relu", "tanh"]},
    }
)


def _objective(trial: optuna.Trial) -> float:
    lr = trial.suggest_float("lr", 1e-3, 10.0, log=True)  # a wider range than the space's
    units = trial.suggest_int("units", 8, 64)
    trial.suggest_categorical("act", ["relu", "tanh", "gelu"])
    for step in range(1, 4):
        trial.report(lr * step, step)
        if trial.number == 2 and step == 2:
            raise optuna.TrialPruned()
    if trial.number == 3:
        raise RuntimeError("diverged")
    return lr * units


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Two studies (one with every trial state) and a multi-objective one; read only."""
    url = f"sqlite:///{tmp_path_factory.mktemp('optuna') / 'optuna.db'}"
    study = optuna.create_study(storage=url, study_name="cifar", direction="minimize")
    study.set_user_attr("dataset_rows", 50000)
    study.set_user_attr("domain", "vision")
    study.set_user_attr("autotweak.spec", {"name": "cifar"})
    configs = [(0.01, 16, "relu"), (0.1, 32, "tanh"), (0.05, 8, "relu"), (0.2, 8, "tanh"), (5.0, 8, "relu")]
    configs += [(0.02, 8, "gelu")]
    for lr, units, act in configs:
        study.enqueue_trial({"lr": lr, "units": units, "act": act})
    study.optimize(_objective, n_trials=len(configs), catch=(RuntimeError,))
    study.ask()  # left running
    study.enqueue_trial({"lr": 0.3, "units": 9, "act": "relu"})  # left waiting
    other = optuna.create_study(storage=url, study_name="imdb", direction="maximize")
    other.enqueue_trial({"lr": 0.5, "units": 10, "act": "tanh"})
    other.optimize(_objective, n_trials=1)
    optuna.create_study(storage=url, study_name="pareto", directions=["minimize", "maximize"])
    return url


def test_states_map_to_complete_pruned_or_counted_skips(
    storage: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="autotweak"):
        histories = read_optuna(storage, space=SPACE)
    assert histories.names == ["cifar", "imdb"]
    cifar = histories.task("cifar")
    assert cifar.direction == "minimize" and histories.task("imdb").direction == "maximize"
    assert cifar.descriptor == {"dataset_rows": 50000.0, "domain": "vision"}
    assert cifar.source.startswith("optuna:sqlite:///") and cifar.source.endswith("#cifar")
    assert [t.source for t in cifar.trials] == ["optuna:cifar#0", "optuna:cifar#1", "optuna:cifar#2"]
    first, _, pruned = cifar.trials
    assert first.params == {"lr": 0.01, "units": 16, "act": "relu"} and first.complete
    assert first.value == pytest.approx(0.16)
    assert first.steps == (1, 2, 3) and first.curve == pytest.approx((0.01, 0.02, 0.03))
    assert not pruned.complete and pruned.value == pytest.approx(0.1) and pruned.steps == (1, 2)
    assert dict(histories.skipped.counts) == {
        "trial state is FAIL": 1,
        "trial state is RUNNING": 1,
        "trial state is WAITING": 1,
        "param 'lr' out of range [0.001, 1.0]": 1,
        "param 'act' is not one of the choices ['relu', 'tanh']": 1,
        "the study is multi-objective": 1,
    }
    assert histories.skipped.examples["trial state is FAIL"] == "optuna:cifar#3"
    assert histories.skipped.examples["the study is multi-objective"] == "optuna:pareto"
    assert "histories from Optuna storage sqlite:///" in caplog.text
    assert "2 task(s) (studies), 4 trial(s); 6 records skipped" in caplog.text


def test_named_studies_only_and_unknown_names_refused(storage: str) -> None:
    assert read_optuna(storage, ["imdb"], space=SPACE).names == ["imdb"]
    with pytest.raises(
        HistoryError,
        match=r"'studies' must name studies of the storage \(there: cifar, imdb, pareto\), got \['mnist'\]",
    ):
        read_optuna(storage, ["imdb", "mnist"], space=SPACE)


def test_a_storage_object_and_renamed_params(storage: str) -> None:
    space = SearchSpace.from_dict(
        {
            "learning_rate": {"type": "float", "low": 1e-3, "high": 1.0, "log": True},
            "units": {"type": "int", "low": 8, "high": 64},
            "act": {"type": "categorical", "choices": ["relu", "tanh"]},
        }
    )
    store = optuna.storages.get_storage(storage)
    histories = read_optuna(store, ["imdb"], space=space, renames={"lr": "learning_rate"})
    assert histories.task("imdb").trials[0].params == {"learning_rate": 0.5, "units": 10, "act": "tanh"}


@pytest.mark.timeout(90)  # libpq alone waits for ever for a server that never answers
def test_a_postgresql_storage_that_never_answers_is_refused_in_seconds(monkeypatch: pytest.MonkeyPatch):
    """As behind a network partition: the engine's connect timeout, not libpq's none."""
    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    with silent_postgres() as url, pytest.raises(HistoryError, match=r"timeout expired"):
        read_optuna(url, space=SPACE)
