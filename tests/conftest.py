"""Shared fixtures: isolated stores per test and ``make_*`` factories."""

from __future__ import annotations

import logging
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from autotweak.spec import Experiment
from autotweak.testing.services import MlflowServer, Postgres, postgres

# A suite started as a background job (`bash scripts/test.sh &` in a script, `nohup ... &`)
# inherits SIGINT ignored, and so would every CLI it starts: the tests of Ctrl-C could not
# deliver it. Handled here, it reaches the CLI processes at its default again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

OBJECTIVES = Path(__file__).with_name("objectives.py").resolve()


def objective(name: str) -> str:
    """Entry point of a test objective, importable from any working directory."""
    return f"{OBJECTIVES}:{name}"


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialized MLflow SQLite store, copied per test (its migrations take seconds)."""
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def killable_mlflow(tmp_path: Path, mlflow_template: Path) -> Iterator[MlflowServer]:
    """An MLflow server of this test's own, which it may kill and start again; its store starts migrated."""
    shutil.copy(mlflow_template, tmp_path / "served.db")
    with MlflowServer(f"sqlite:///{tmp_path / 'served.db'}", tmp_path / "served") as served:
        yield served


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    """A PostgreSQL server of the module's own, with a database 'optuna'; its tests may stop and start it."""
    with postgres() as server:
        server.create_database("optuna")
        yield server


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_template: Path) -> Iterator[Path]:
    """Run in an empty working directory whose embedded stores belong to this test."""
    store = tmp_path / ".autotweak"
    store.mkdir()
    shutil.copy(mlflow_template, store / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTOTWEAK_HOME", str(store))
    monkeypatch.delenv("AUTOTWEAK_STORAGE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield store


def base_spec(**overrides: Any) -> dict[str, Any]:
    """A small valid experiment mapping; keys in ``overrides`` replace its own."""
    spec: dict[str, Any] = {
        "name": "study",
        "objective": objective("quadratic"),
        "base": {"x": 0.0},
        "tweaks": {"x": {"type": "float", "low": -5.0, "high": 5.0}},
        "metric": {"name": "loss", "direction": "minimize", "steps": 5},
        "budget": {"trials": 6},
        "sampler": {"name": "random"},
        "pruner": "none",
        "seed": 0,
        "execution": {"workers": 1, "heartbeat_interval": 1, "grace_period": 3},
    }
    spec.update(overrides)
    return spec


@pytest.fixture
def make_experiment() -> Callable[..., Experiment]:
    """Factory: ``make_experiment(budget={"trials": 3})`` returns a validated experiment."""

    def make(**overrides: Any) -> Experiment:
        return Experiment.from_dict(base_spec(**overrides))

    return make


@pytest.fixture
def mlflow_client(home: Path) -> MlflowClient:
    """A client on this test's embedded MLflow store."""
    return MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")


@pytest.fixture(autouse=True)
def _signal_handlers_restored() -> Iterator[None]:
    """The CLI, called in-process by tests, routes SIGTERM and SIGHUP for the whole process:
    each test starts from the handlers the one before it found."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for stop_signal, handler in saved.items():
        signal.signal(stop_signal, handler)


@pytest.fixture(autouse=True)
def _autotweak_logging_restored() -> Iterator[None]:
    """The CLI, called in-process by tests, sets autotweak's log levels and a handler on its stderr:
    each test starts from the levels and handlers the one before it found (not an INFO level, nor a
    handler on a stream closed since)."""
    loggers = [logging.getLogger("autotweak")] + [
        logger
        for name, logger in logging.root.manager.loggerDict.items()
        if name.startswith("autotweak.") and isinstance(logger, logging.Logger)
    ]
    saved = [(logger, logger.level, list(logger.handlers)) for logger in loggers]
    yield
    for logger, level, handlers in saved:
        logger.setLevel(level)
        logger.handlers[:] = handlers
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name.startswith("autotweak.") and isinstance(logger, logging.Logger) and logger not in loggers:
            logger.setLevel(logging.NOTSET)  # made during the test, maybe set by the CLI


@pytest.fixture(autouse=True)
def _storage_contact_forgotten() -> None:
    """A storage outage an earlier test made in this process does not hold this test's stale-trial sweeps."""
    from autotweak.engine._contact import CONTACT

    CONTACT.__init__()  # type: ignore[misc]
