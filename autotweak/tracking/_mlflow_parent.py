"""A study's parent run in MLflow: its components' tags, and the strays a killed start left running."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import RunStatus

__all__ = ["close_stray_parents", "meta_tags"]

_log = logging.getLogger(__name__)


def meta_tags(meta: Mapping[str, Any]) -> dict[str, str]:
    """A parent run's tags for its components: ``autotweak.meta.sampler`` = their settings as JSON."""
    return {f"autotweak.meta.{k}": json.dumps(v, sort_keys=True, default=str) for k, v in meta.items()}


def close_stray_parents(
    client: MlflowClient, experiment_id: str, study_name: str, storage: str, run_id: str
) -> None:
    """Close, as ``KILLED``, parent runs of the study left running by a process killed as it made them.

    Killed before the study recorded its parent run's id, such a process leaves a run
    that nothing would ever close; the study's own parent is ``run_id`` now. A study of
    the same name in another storage, which may share this tracking store, is not it.
    """
    stray = client.search_runs(
        [experiment_id],
        filter_string="tags.`autotweak.kind` = 'study' and attributes.status = 'RUNNING'",
    )
    for run in stray:
        ours = run.data.tags.get("autotweak.study") == study_name
        if ours and run.info.run_id != run_id and run.data.tags.get("autotweak.storage") == storage:
            client.set_tag(run.info.run_id, "autotweak.superseded_by", run_id)
            client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
            _log.warning(
                "closed parent run %s of study '%s': its process was killed as it made it",
                run.info.run_id,
                study_name,
            )
