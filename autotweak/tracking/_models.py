"""A trial's saved model in MLflow: uploaded as the run's ``model/`` artifact, registered by name.

The objective saves its model wherever it likes and calls ``trial.log_model(path)``; the
MLflow tracker puts the file or folder under ``model/`` in the trial's child run. Registering the best
trial's model (``autotweak report STUDY --register NAME``) creates a version of the
registered model ``NAME`` whose source is ``runs:/<run id>/model``, tagged with its lineage.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from autotweak.exceptions import AutotweakError

__all__ = ["MODEL_ARTIFACT", "register_model", "upload_model"]

_log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"


def upload_model(client: MlflowClient, run_id: str, path: Path) -> str:
    """Upload the file or folder ``path`` as ``model/`` of run ``run_id``; return its ``runs:/`` URI."""
    if path.is_dir():
        client.log_artifacts(run_id, str(path), MODEL_ARTIFACT)
    else:
        client.log_artifact(run_id, str(path), MODEL_ARTIFACT)
    return f"runs:/{run_id}/{MODEL_ARTIFACT}"


def register_model(
    client: MlflowClient,
    name: str,
    run_id: str,
    *,
    tags: Mapping[str, str],
    description: str,
) -> ModelVersion:
    """Register ``runs:/<run_id>/model`` as a new version of the registered model ``name``.

    Raises:
        AutotweakError: If the run holds no ``model/`` artifact or the registry refuses.
    """
    if not client.list_artifacts(run_id, MODEL_ARTIFACT):
        raise AutotweakError(
            f"run {run_id} holds no '{MODEL_ARTIFACT}/' artifact to register; the objective must call "
            "trial.log_model(path) after saving its model."
        )
    try:
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            client.create_registered_model(name, tags={"autotweak.study": tags.get("autotweak.study", "")})
        return client.create_model_version(
            name,
            source=f"runs:/{run_id}/{MODEL_ARTIFACT}",
            run_id=run_id,
            tags=dict(tags),
            description=description,
        )
    except MlflowException as exc:
        raise AutotweakError(f"the MLflow Model Registry refused model '{name}': {exc.message}") from exc
