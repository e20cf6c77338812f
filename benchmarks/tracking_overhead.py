"""Tracking overhead: autotweak with full MLflow tracking vs bare Optuna, same storage.

A trivial objective reports 20 steps. Both arms run in this process, alternating in
blocks, on fresh SQLite stores in one temporary folder, and the median time per trial
of each is compared:

    python -m benchmarks.tracking_overhead --trials 60
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna

import autotweak
from autotweak.spec import Budget, Component, Experiment, Metric

STEPS = 20


def trivial(config: dict[str, Any], trial: autotweak.Trial) -> float:
    for step in range(1, STEPS + 1):
        trial.report(config["x"] * step, step)
    return float(config["x"])


def _bare_objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)
    for step in range(1, STEPS + 1):
        trial.report(x * step, step)
    return x


def bare_optuna(storage: str, name: str, trials: int) -> list[float]:
    """Seconds per trial of plain ``study.optimize`` (no tracking)."""
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0),
                                pruner=optuna.pruners.NopPruner())
    times: list[float] = []
    for _ in range(trials):
        start = time.perf_counter()
        study.optimize(_bare_objective, n_trials=1)
        times.append(time.perf_counter() - start)
    return times


def tracked(storage: str, tracking: str, name: str, trials: int) -> list[float]:
    """Seconds per trial of autotweak's ask/tell loop with MLflow tracking."""
    experiment = Experiment(
        name=name,
        objective=trivial,
        space=autotweak.SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0}}),
        metric=Metric("score", "maximize", steps=STEPS),
        budget=Budget(trials=trials),
        sampler=Component("random"),
        pruner=Component("none"),
        storage=storage,
        tracking_uri=tracking,
    )
    times: list[float] = []
    with autotweak.Study(experiment) as study:
        while True:
            start = time.perf_counter()
            trial = study.ask()
            if trial is None:
                break
            study.tell(trial, trivial(trial.config, trial))
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=60, help="trials per arm and block")
    parser.add_argument("--blocks", type=int, default=3, help="alternating blocks per arm")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    bare: list[float] = []
    ours: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{Path(tmp) / 'optuna.db'}"
        tracking = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        for block in range(args.blocks):
            bare += bare_optuna(storage, f"bare-{block}", args.trials)
            ours += tracked(storage, tracking, f"tracked-{block}", args.trials)
    b, o = statistics.median(bare), statistics.median(ours)
    print(f"bare Optuna      median {b * 1000:7.1f} ms/trial  ({len(bare)} trials)")
    print(f"autotweak+MLflow median {o * 1000:7.1f} ms/trial  ({len(ours)} trials)")
    print(f"ratio {o / b:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
