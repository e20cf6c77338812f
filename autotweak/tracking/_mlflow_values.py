"""What ``MlflowTracker`` writes: autotweak's values as MLflow metrics, params and tags.

A config's nested values become dotted param names (``optim.lr``) and the spec's search
space one param per parameter (``space.lr``: ``float[0.0001, 0.1] log``); dicts and lists
are written as JSON, other values as text. Also here: the study's ``summary.json`` and
where an experiment's artifacts go.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from mlflow.entities import Metric, Param, RunTag

from autotweak._config import flat_config
from autotweak._locations import artifact_root
from autotweak.tracking._records import StudySummary

__all__ = [
    "as_text",
    "config_params",
    "experiment_artifacts",
    "metric_entities",
    "now_ms",
    "param_entities",
    "range_text",
    "spec_params",
    "summary_dict",
    "tag_entities",
]


def now_ms() -> int:
    return int(time.time() * 1000)


def metric_entities(items: Iterable[tuple[str, float]], ts: int | None = None) -> list[Metric]:
    stamp = ts or now_ms()
    return [Metric(k, float(v), stamp, 0) for k, v in items]


def config_params(config: Mapping[str, Any]) -> list[Param]:
    """A trial's config as params, nested values under dotted names (``optim.lr``), as the spec names them."""
    return param_entities(flat_config(config).items())


def param_entities(items: Iterable[tuple[str, Any]]) -> list[Param]:
    return [Param(str(k), as_text(v)[:6000]) for k, v in items]


def tag_entities(items: Iterable[tuple[str, Any]]) -> list[RunTag]:
    return [RunTag(str(k), as_text(v)) for k, v in items]


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str) if isinstance(value, dict | list) else str(value)


def spec_params(spec: dict[str, Any]) -> list[Param]:
    flat: dict[str, Any] = {
        "metric": spec["metric"]["name"],
        "direction": spec["metric"]["direction"],
        "sampler": spec["sampler"]["name"],
        "pruner": spec["pruner"]["name"],
        "objective": spec["objective"],
        "seed": spec["seed"],
    }
    flat.update({f"space.{k}": range_text(v) for k, v in spec["tweaks"]["params"].items()})
    flat.update({f"base.{k}": v for k, v in spec["base"].items()})
    return param_entities(flat.items())


def range_text(definition: dict[str, Any]) -> str:
    kind = definition["type"]
    if kind == "categorical":
        shown = f"choice{definition['choices']}"
    elif kind == "fixed":
        shown = f"fixed({definition['value']!r})"
    else:
        scale = " log" if definition.get("log") else ""
        step = f" step {definition['step']}" if definition.get("step") is not None else ""
        shown = f"{kind}[{definition['low']}, {definition['high']}]{scale}{step}"
    for parent, values in (definition.get("when") or {}).items():  # searched only under its condition
        shown += f" when {parent} in {values if isinstance(values, list) else [values]}"
    return shown


def summary_dict(summary: StudySummary) -> dict[str, Any]:
    return {
        "study": summary.study_name,
        "counts": summary.counts,
        "best_trial": summary.best_number,
        "best_value": summary.best_value,
        "best_params": summary.best_params,
        "base_value": summary.base_value,
        "compute_full_trainings": summary.compute,
        "interrupted": summary.interrupted,
    }


def experiment_artifacts(tracking_uri: str, study_name: str) -> str | None:
    root = artifact_root(tracking_uri)
    return None if root is None else f"{root}/{study_name}"
