"""Objectives of the report tests; workers import them through this file's path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import autotweak

HERE = Path(__file__).resolve()


def ref(name: str) -> str:
    """Entry point of an objective of this file, importable from any working directory."""
    return f"{HERE}:{name}"


def additive(config: dict[str, Any], trial: autotweak.Trial) -> float:
    """a + 2 b + 0.5 [c == 'v']: each tweak's contribution is known exactly."""
    value = float(config["a"]) + 2.0 * float(config["b"]) + (0.5 if config["c"] == "v" else 0.0)
    for step in range(1, 4):
        trial.report(value * step / 3, step)
    return value


def watching(config: dict[str, Any], trial: autotweak.Trial) -> float:
    """Like ``additive``, and keeps the pruner the study's stored spec named while it ran."""
    spec = trial.optuna_trial.study.user_attrs.get("autotweak.spec", {})
    trial.set_user_attr("stored_pruner", spec.get("pruner", {}).get("name"))
    return additive(config, trial)


def saving(config: dict[str, Any], trial: autotweak.Trial) -> float:
    """Like ``additive``, and saves a small model file with ``trial.log_model``."""
    value = additive(config, trial)
    model = trial.checkpoint_dir / "weights.txt"
    model.write_text(f"a={config['a']} b={config['b']} c={config['c']}\n")
    trial.log_model(model)
    return value


def conditional(config: dict[str, Any], trial: autotweak.Trial) -> float:
    """2 b, plus 1 + mom with sgd: ``mom`` exists only when ``opt`` is sgd."""
    value = 2.0 * float(config["b"])
    return value + (1.0 + float(config["mom"]) if config["opt"] == "sgd" else 0.0)
