"""Names of the Optuna attrs (user and system) that more than one layer writes or reads."""

from __future__ import annotations

__all__ = ["DIVERGED_RULE", "DRY_RUN_ATTR", "PRUNER_PREFIX"]

PRUNER_PREFIX = "autotweak.pruner."
"""Prefix of the user attrs on a pruned trial saying why: written by the learned pruner and,
for the other pruners, by the engine; copied to the trial's MLflow run as tags."""

DRY_RUN_ATTR = "autotweak.dry_run"
"""On a study (a system attr) run only to try its components, of trials that never run (the
spec check's): the meta sampler leaves its once-per-study note to the real study (the
learned pruner's notes wait for more trials than such a study has)."""

DIVERGED_RULE = "non-finite value"
"""``autotweak.pruner.rule`` of a trial stopped because it reported NaN or the worst infinity
for the study's direction (``autotweak.pruner.value`` says which), whatever the pruner."""
