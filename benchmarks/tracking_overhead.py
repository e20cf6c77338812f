"""Tracking overhead: autotweak with full MLflow tracking vs bare Optuna, same storage.

A trivial objective reports 20 steps. Both arms run in this process on the same SQLite
Optuna storage with the same settings (WAL, heartbeats every 5 s), in blocks of trials
taking turns so that both see the same machine load. A block's time per trial covers its
trials from the first ask to the last tell, every record written; opening and closing
the study are left out. The medians over blocks are compared:

    python -m benchmarks.tracking_overhead --trials 50 --blocks 4
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


def _experiment(storage: str, tracking: str, name: str, trials: int) -> Experiment:
    return Experiment(
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


def measure(folder: Path, trials: int, blocks: int) -> tuple[list[float], list[float]]:
    """Seconds per trial of each arm: blocks of ``trials`` trials, the arms taking turns."""
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
    for block in range(blocks):
        start = time.perf_counter()
        bare.optimize(_bare_objective, n_trials=trials)
        bare_times.append((time.perf_counter() - start) / trials)
        with autotweak.Study(_experiment(storage, tracking, f"tracked-{block}", trials)) as study:
            start = time.perf_counter()
            while (trial := study.ask()) is not None:
                study.tell(trial, trivial(trial.config, trial))
            tracked_times.append((time.perf_counter() - start) / trials)
    return bare_times, tracked_times


def main() -> None:
    """Run the comparison and print the medians and their ratio."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=50, help="trials per block")
    parser.add_argument("--blocks", type=int, default=4, help="blocks per arm")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        bare, ours = measure(Path(tmp), args.trials, args.blocks)
    b, o = statistics.median(bare), statistics.median(ours)
    n = args.trials * args.blocks
    print(f"bare Optuna      median {b * 1000:7.1f} ms/trial  ({n} trials in {args.blocks} blocks)")
    print(f"autotweak+MLflow median {o * 1000:7.1f} ms/trial  ({n} trials in {args.blocks} blocks)")
    print(f"ratio {o / b:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
