"""What one MLflow run's data say: its params as recorded, its value or why it has none, its descriptor."""

from __future__ import annotations

import difflib
import json
import math
import sys
from collections.abc import Mapping
from typing import Any

from mlflow.entities import Run

from autotweak._config import flat_config
from autotweak.meta._skips import HintedReason

__all__ = ["descriptor", "finite", "no_metric", "no_task_key", "unpacked", "untweaked", "value_of"]


def unpacked(params: Mapping[str, str]) -> dict[str, str]:
    """Params with a JSON object as value spread under dotted names, as older autotweak runs logged them.

    Example:
        >>> unpacked({"optim": '{"lr": 0.05, "wd": 0}', "width": "64"})
        {'optim.lr': '0.05', 'optim.wd': '0', 'width': '64'}
    """
    out: dict[str, str] = {}
    for key, text in params.items():
        value = _json_object(text)
        if value is None:
            out.setdefault(key, text)
        else:
            for name, inner in flat_config(value, f"{key}.").items():
                out.setdefault(name, inner if isinstance(inner, str) else json.dumps(inner))
    return out


def untweaked(params: Mapping[str, str], study: Mapping[str, str]) -> frozenset[str]:
    """The names of a trial's ``params`` that are its study's base values, never tweaked.

    An autotweak trial logs its whole config; its study's run logs the base config as
    ``base.<key>`` and the space as ``space.<name>``. A base value the study held is no
    news to a reader whose space lacks it; a param the study tweaked is.

    Example:
        >>> study = {"base.epochs": "3", "base.optim": '{"wd": 0}', "space.x": "float[0, 1]"}
        >>> sorted(untweaked({"x": "0.5", "epochs": "3", "optim.wd": "0"}, study))
        ['epochs', 'optim.wd']
    """
    bases = [key.removeprefix("base.") for key in study if key.startswith("base.")]
    tweaked = {key.removeprefix("space.") for key in study if key.startswith("space.")}
    return frozenset(
        name
        for name in params
        if name not in tweaked and any(name == base or name.startswith(f"{base}.") for base in bases)
    )


def _json_object(text: str) -> dict[str, Any] | None:
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) and value else None


def value_of(run: Run, metric: str) -> float | None:
    """The metric's last value (by step), or the final value an autotweak trial recorded.

    An autotweak trial whose objective never reported has the final value only; a run with
    neither has no value (None).
    """
    metrics = run.data.metrics
    final = metrics.get(f"final_{metric}") if run.data.tags.get("autotweak.kind") == "trial" else None
    if metric not in metrics:
        return None if final is None else float(final)
    last = float(metrics[metric])
    if not finite(last):
        return math.nan
    return last if final is None else float(final)


def finite(value: float) -> bool:
    """Finite, as logged: MLflow's SQL stores keep an infinite value as +-1.797e308 (the largest float)."""
    return math.isfinite(value) and abs(value) < sys.float_info.max


def descriptor(tags: Mapping[str, str]) -> dict[str, float | str]:
    """An experiment's own tags (not MLflow's or autotweak's), numbers as numbers."""
    out: dict[str, float | str] = {}
    for key, text in tags.items():
        if key.startswith(("mlflow.", "autotweak.")):
            continue
        try:
            out[key] = float(text)
        except ValueError:
            out[key] = text
    return out


def no_task_key(key: str, names: list[str]) -> str:
    """Why a run has no task, hinting at the tag or param of the run that ``key`` may misspell.

    The hint is not part of the reason counted: runs with a near name and runs without one
    are one entry of the report.
    """
    known = [name for name in names if not name.startswith("mlflow.")]
    return _hinted(f"task key {key!r} is neither a tag nor a param of the run", key, known, 0.7)


def no_metric(metric: str, run: Run) -> str:
    """Why a run has no value, hinting at the metric of the run that ``metric`` may misspell."""
    return _hinted(f"metric {metric!r} is missing", metric, list(run.data.metrics), 0.6)


def _hinted(rule: str, name: str, known: list[str], cutoff: float) -> str:
    """``rule``, with the name of ``known`` nearest to ``name`` as a hint where one is near enough."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=cutoff)
    return HintedReason(rule, f"did you mean {close[0]!r}") if close else rule
