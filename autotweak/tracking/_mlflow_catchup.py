"""Catching up a trial run that another process opened: the points and params it lacks.

A record closed by a process that did not open it (a crash's survivor, a resume, a study's
close after its tracking server came back) writes only what the run does not hold yet, so
that a curve step or a param is never written twice.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

from mlflow import MlflowClient
from mlflow.entities import Metric, Run

from autotweak._config import flat_config
from autotweak.tracking._inflight import IN_FLIGHT, Sent, same_points
from autotweak.tracking._records import RECONCILED_TAG

__all__ = [
    "CONFIG_FILE_TAG",
    "CONFIG_TAG",
    "Missing",
    "missing_points",
    "new_points",
    "stored_config",
]

_log = logging.getLogger(__name__)

CONFIG_TAG = "autotweak.config"
CONFIG_FILE_TAG = "autotweak.config_artifact"  # names the artifact of a config too long for its tag


class Missing(NamedTuple):
    """What a run opened elsewhere lacks, and whether a catch-up wrote it from Optuna's trial."""

    metrics: list[Metric]
    params: dict[str, Any]
    reconciled: bool  # it holds the tag RECONCILED_TAG


def missing_points(client: MlflowClient, run_id: str, metric: str, metrics: list[Metric]) -> Missing:
    """The metric points and params that a run opened elsewhere does not have yet."""
    sent = IN_FLIGHT.of(run_id)  # before the run is read (see new_points)
    run = client.get_run(run_id)
    seen = {(key, 0) for key in run.data.metrics if key != metric}
    config = stored_config(client, run)
    params = {k: v for k, v in flat_config(config).items() if k not in run.data.params}
    points = [m for m in metrics if (m.key, m.step) not in seen]
    reconciled = run.data.tags.get(RECONCILED_TAG) is not None
    return Missing(new_points(client, run_id, metric, points, sent), params, reconciled)


def stored_config(client: MlflowClient, run: Run) -> dict[str, Any]:
    """The config a run opened elsewhere was started with: its tag's, or its artifact's.

    A config that cannot be read (a tag cut by an older version, an artifact never
    written) is ``{}``, with a warning: the record is closed without those params.
    """
    tags = run.data.tags
    try:
        if tags.get(CONFIG_FILE_TAG):
            with tempfile.TemporaryDirectory() as tmp:
                path = client.download_artifacts(run.info.run_id, tags[CONFIG_FILE_TAG], tmp)
                text = Path(path).read_text(encoding="utf-8")
        else:
            text = tags.get(CONFIG_TAG) or "{}"
        config = json.loads(text)
        if not isinstance(config, dict):
            raise ValueError(f"a JSON object was expected, got {type(config).__name__}")
    except Exception as exc:
        _log.warning(
            "the config of trial run %s cannot be read (%s: %.200s); its record is closed without its params",
            run.info.run_id,
            type(exc).__name__,
            exc,
        )
        return {}
    return config


def new_points(
    client: MlflowClient, run_id: str, metric: str, metrics: list[Metric], sent: Sent | None = None
) -> list[Metric]:
    """``metrics`` less the steps of ``metric`` that the run has already.

    A point that a write of this process still waiting out MLflow's retries sends too
    is written as that write's, so that the two are one point in MLflow whichever lands
    first (see :mod:`autotweak.tracking._inflight`).
    """
    sent = IN_FLIGHT.of(run_id) if sent is None else sent
    seen = {m.step for m in client.get_metric_history(run_id, metric)}
    return same_points(sent, [m for m in metrics if m.key != metric or m.step not in seen])
