"""MLflow and Optuna readers: one name reads as a list; wrong arguments and stores are refused by name."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from autotweak.exceptions import SpaceError
from autotweak.meta import Histories, HistoryError, fit_meta_model, read_mlflow, read_optuna
from autotweak.space import SearchSpace

SPACE = SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0}}, name="unit")
SPACE_YAML = "params:\n  x: {type: float, low: 0.0, high: 1.0}\n"


@pytest.fixture
def mlflow_uri(mlflow_client: MlflowClient, home: Path) -> str:
    """A store with one experiment 'wine-gbm' of three runs."""
    experiment = mlflow_client.create_experiment("wine-gbm")
    for i in range(3):
        run = mlflow_client.create_run(experiment)
        mlflow_client.log_param(run.info.run_id, "x", str(i / 4))
        mlflow_client.log_metric(run.info.run_id, "acc", 0.5 + i / 10)
        mlflow_client.set_terminated(run.info.run_id)
    return f"sqlite:///{home / 'mlflow.db'}"


def test_read_mlflow_takes_one_experiment_name_as_a_list(mlflow_uri: str) -> None:
    histories = read_mlflow(mlflow_uri, "wine-gbm", metric="acc", space=SPACE)
    assert histories.names == ["wine-gbm"] and histories.n_trials == 3
    with pytest.raises(HistoryError, match=r"got \['nope'\]"):
        read_mlflow(mlflow_uri, "nope", metric="acc", space=SPACE)
    with pytest.raises(HistoryError, match="'experiments' must be a name or a list of names, got 7"):
        read_mlflow(mlflow_uri, 7, metric="acc", space=SPACE)  # type: ignore[arg-type]


def test_read_mlflow_refuses_a_missing_space_and_takes_a_library_name(mlflow_uri: str) -> None:
    with pytest.raises(HistoryError, match=r"'space' must be a SearchSpace, .* got NoneType None"):
        read_mlflow(mlflow_uri, metric="acc", space=None)  # type: ignore[arg-type]
    histories = read_mlflow(mlflow_uri, metric="acc", space="hgb")
    assert histories.n_trials == 0 and "param 'learning_rate' is missing" in histories.skipped.summary()


def test_a_misspelled_space_name_is_refused_naming_the_argument(mlflow_uri: str, tmp_path: Path) -> None:
    said = (
        r"^'space' must name a search space of the library \(.*\) or a \.yaml file \(did you mean 'hgb'\?\)"
    )
    with pytest.raises(SpaceError, match=said + r", got 'hbg'\.$"):
        read_mlflow(mlflow_uri, metric="acc", space="hbg")
    with pytest.raises(SpaceError, match=r"^'space' must name an existing search space file"):
        read_optuna(f"sqlite:///{tmp_path / 'absent.db'}", space=tmp_path / "nope.yaml")
    with pytest.raises(SpaceError, match=r"^'space' must name a search space of the library"):
        fit_meta_model(Histories(()), "hbg")


def test_read_mlflow_refuses_a_uri_mlflow_cannot_open() -> None:
    with pytest.raises(HistoryError) as info:
        read_mlflow("foo://bar", metric="acc", space=SPACE)
    message = str(info.value)
    assert message.startswith("'tracking_uri' must be a tracking URI MLflow can open")
    assert "got 'foo://bar' (UnsupportedModelRegistryStoreURIException" in message
    with pytest.raises(HistoryError, match="'tracking_uri' must be an MLflow tracking URI"):
        read_mlflow(None, metric="acc", space=SPACE)  # type: ignore[arg-type]


@pytest.fixture
def optuna_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(storage=url, study_name="adult-hgb", direction="maximize")
    for x in (0.1, 0.5, 0.9):
        study.enqueue_trial({"x": x})
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=3)
    return url


def test_read_optuna_takes_one_study_name_as_a_list(optuna_url: str) -> None:
    histories = read_optuna(optuna_url, "adult-hgb", space=SPACE)
    assert histories.names == ["adult-hgb"] and histories.n_trials == 3
    with pytest.raises(HistoryError, match=r"'studies' must name studies of the storage .*, got \['adult'\]"):
        read_optuna(optuna_url, "adult", space=SPACE)
    with pytest.raises(HistoryError, match="'space' must be a SearchSpace"):
        read_optuna(optuna_url, space=None)  # type: ignore[arg-type]


def test_read_optuna_refuses_an_mlflow_store(mlflow_client: MlflowClient, home: Path) -> None:
    path = home / "mlflow.db"
    refused = r"must name an Optuna storage, got a database with other tables \(an MLflow store\)"
    with pytest.raises(HistoryError, match=refused):
        read_optuna(f"sqlite:///{path}", space=SPACE)
    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "studies" not in tables  # refused before Optuna added its tables to it


def test_read_optuna_refuses_a_storage_optuna_cannot_open(tmp_path: Path) -> None:
    path = tmp_path / "mixed.db"
    with sqlite3.connect(path) as conn:  # Optuna's tables, but another tool's alembic version
        conn.execute("CREATE TABLE studies (study_id INTEGER)")
        conn.execute("CREATE TABLE alembic_version (version_num TEXT)")
        conn.execute("INSERT INTO alembic_version VALUES ('abc123')")
    with pytest.raises(
        HistoryError, match=r"mixed.db: must be an Optuna storage that Optuna can open, got \w+"
    ):
        read_optuna(f"sqlite:///{path}", space=SPACE)


def test_read_optuna_refuses_a_path_with_the_url_to_write(tmp_path: Path) -> None:
    with pytest.raises(
        HistoryError, match=r"'storage' must be a database URL, such as sqlite:///.*optuna\.db"
    ):
        read_optuna("optuna.db", space=SPACE)
