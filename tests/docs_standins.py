"""Stand-ins for the names a Python block of the docs leaves to the reader's own code.

The docs test runs each Python block with ``from tests.docs_standins import *`` before it:
``build``, ``fit_one_epoch`` and ``score`` are the reader's training, ``train`` an objective,
``experiment`` the ask/tell spec, and ``autotweak`` imported as the block before it did.
Its working directory holds ``experiment.yaml`` (:func:`experiment_yaml`), a small study of
``train`` (of the block's own ``train`` where it defines one).
"""

from __future__ import annotations

import math
from typing import Any

import yaml

import autotweak

EPOCHS = 3


def experiment_yaml(objective: str) -> str:
    """``experiment.yaml``: a study of three trials of ``objective``, reporting ``EPOCHS`` steps."""
    spec = {
        "name": "docs-example",
        "objective": objective,
        "base": {"lr": 0.01, "epochs": EPOCHS},
        "tweaks": {"lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True}},
        "metric": {"name": "score", "direction": "maximize", "steps": EPOCHS},
        "budget": {"trials": 3},
    }
    return yaml.safe_dump(spec, sort_keys=False)


experiment: dict[str, Any] = {  # the ask/tell block reports 30 epochs
    "name": "docs-ask-tell",
    "base": {"lr": 0.01},
    "tweaks": {"lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True}},
    "metric": {"name": "score", "direction": "maximize", "steps": 30},
    "budget": {"trials": 3},
}


def score(config: dict[str, Any]) -> float:
    """A score in [0, 1] that depends on every number of the config."""
    numbers = [float(value) for value in config.values() if isinstance(value, int | float)]
    return 0.5 + 0.5 * math.sin(sum(numbers))


def build(config: dict[str, Any]) -> dict[str, Any]:
    return dict(config)


def fit_one_epoch(*args: Any) -> float:
    """``fit_one_epoch(model, config)`` or ``fit_one_epoch(config)``, as the blocks call it."""
    return score(args[-1])


def train(config: dict[str, Any], trial: autotweak.Trial | None = None) -> float:
    value = score(config)
    for step in range(1, EPOCHS + 1):
        if trial is not None:
            trial.report(value, step=step)
    return value


__all__ = ["autotweak", "build", "experiment", "fit_one_epoch", "score", "train"]
