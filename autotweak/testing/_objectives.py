"""Objectives for the conformance suites, importable by worker processes."""

from __future__ import annotations

from typing import Any

from autotweak.engine import Trial


def quadratic(config: dict[str, Any], trial: Trial) -> float:
    """Minimum 0 at x = 1, reporting three steps."""
    value = (float(config["x"]) - 1.0) ** 2
    for step in range(1, 4):
        trial.report(value + 3 - step, step)
    return value


def failing(config: dict[str, Any], trial: Trial) -> float:
    """Fails for x > 0, by exception."""
    if float(config["x"]) > 0:
        raise RuntimeError("conformance failure")
    return float(config["x"])
