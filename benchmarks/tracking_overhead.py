"""Tracking overhead: autotweak with full MLflow tracking vs bare Optuna, same storage.

A trivial objective reports 20 steps. Both arms run in this process on the same SQLite
Optuna storage with the same settings (WAL, heartbeats every 5 s), one trial of each in
turn so that both see the same machine load, and the median time per trial is compared:

    python -m benchmarks.tracking_overhead --trials 200
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
from autotweak.engine._storage import make_storage
from autotweak.spec import Budget, Component, Experiment, Metric

STEPS = 20
HEARTBEAT = 5  # autotweak's default; both arms use the same storage settings


def trivial(config: dict[str, Any], trial: autotweak.Trial) -> float:
    """The tracked arm's objective: report 20 steps, return a number."""
    for step in range(1, STEPS + 1):
        trial.report(config["x"] * step, step)
    return float(config["x"])


def _bare_objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)
    for step in range(1, STEPS + 1):
        trial.report(x * step, step)
    return x


def _experiment(storage: str, tracking: str, trials: int) -> Experiment:
    return Experiment(
        name="tracked",
        objective=trivial,
        space=autotweak.SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0}}),
        metric=Metric("score", "maximize", steps=STEPS),
        budget=Budget(trials=trials),
        sampler=Component("random"),
        pruner=Component("none"),
        storage=storage,
        tracking_uri=tracking,
    )


def measure(folder: Path, trials: int) -> tuple[list[float], list[float]]:
    """Seconds per trial of each arm, taking turns trial by trial."""
    storage = f"sqlite:///{folder / 'optuna.db'}"
    tracking = f"sqlite:///{folder / 'mlflow.db'}"
    bare = optuna.create_study(
        storage=make_storage(storage, heartbeat_interval=HEARTBEAT, grace_period=4 * HEARTBEAT),
        study_name="bare",
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.NopPruner(),
    )
    bare_times: list[float] = []
    tracked_times: list[float] = []
    with autotweak.Study(_experiment(storage, tracking, trials)) as study:
        for _ in range(trials):
            start = time.perf_counter()
            bare.optimize(_bare_objective, n_trials=1)
            bare_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            trial = study.ask()
            assert trial is not None
            study.tell(trial, trivial(trial.config, trial))
            tracked_times.append(time.perf_counter() - start)
    return bare_times, tracked_times


def main() -> None:
    """Run the comparison and print the medians and their ratio."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=200, help="trials per arm")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        bare, ours = measure(Path(tmp), args.trials)
    b, o = statistics.median(bare), statistics.median(ours)
    print(f"bare Optuna      median {b * 1000:7.1f} ms/trial  ({len(bare)} trials)")
    print(f"autotweak+MLflow median {o * 1000:7.1f} ms/trial  ({len(ours)} trials)")
    print(f"ratio {o / b:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
