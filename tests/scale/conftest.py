from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from autotweak.testing.services import Postgres, mlflow_server, postgres


@dataclass
class SharedStores:
    pg: Postgres
    storage: str
    tracking_uri: str


@pytest.fixture(scope="session")
def shared_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedStores]:
    """PostgreSQL (Optuna's storage and MLflow's backend) and an MLflow server, for the session."""
    root = tmp_path_factory.mktemp("services")
    with postgres() as pg:
        pg.create_database("optuna")
        pg.create_database("mlflow")
        artifacts = root / "artifacts"
        artifacts.mkdir()
        with mlflow_server(pg.url("mlflow"), artifacts) as url:
            yield SharedStores(pg, pg.url("optuna"), url)
