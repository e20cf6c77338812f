"""Names of the Optuna user attrs that more than one layer writes or reads."""

from __future__ import annotations

__all__ = ["PRUNER_PREFIX"]

PRUNER_PREFIX = "autotweak.pruner."
"""Prefix of the user attrs on a pruned trial saying why: written by the learned pruner and,
for the other pruners, by the engine; copied to the trial's MLflow run as tags."""
