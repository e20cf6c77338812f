"""Scaling: trials of a sleeping objective across 1, 2, 4, 8, 16 local worker processes.

The stores are shared ones, as for a team: Optuna on PostgreSQL and an MLflow tracking
server (PostgreSQL backend, one server worker), both started on loopback for the run.
Each worker count runs its own study of ``trials-per-worker x workers`` trials.

- efficiency = busy time / (workers x wall time), busy time being the objective's own
  sleep and wall time running from the first trial's start to the last trial's end
  (process start-up is left out: it is paid once per worker, not per trial);
- coordination overhead per trial = (workers x wall time - busy time) / trials.

    python -m benchmarks.scaling --workers 1 2 4 8 16 --seconds 2
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna

import autotweak
from autotweak.spec import Budget, Component, Execution, Experiment, Metric
from autotweak.testing.services import mlflow_server, postgres

REPORTS = 4


def sleeper(config: dict[str, Any], trial: autotweak.Trial) -> float:
    """Sleep ``seconds`` in four reported steps, like a short training."""
    for step in range(1, REPORTS + 1):
        time.sleep(config["seconds"] / REPORTS)
        trial.report(config["x"] * step, step)
    return float(config["x"])


def run_one(workers: int, trials: int, seconds: float, storage: str, tracking: str) -> dict[str, float]:
    """Run one study and measure its efficiency from Optuna's trial timestamps."""
    experiment = Experiment(
        name=f"scale-{workers}",
        objective=sleeper,
        space=autotweak.SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0}}),
        metric=Metric("score", "maximize", steps=REPORTS),
        base={"seconds": seconds},
        budget=Budget(trials=trials),
        sampler=Component("random"),
        pruner=Component("none"),
        execution=Execution(workers=workers),
        storage=storage,
        tracking_uri=tracking,
    )
    autotweak.optimize(experiment, on_progress=lambda progress: None)
    done = optuna.load_study(study_name=experiment.name, storage=storage).trials
    starts = [t.datetime_start.timestamp() for t in done if t.datetime_start]
    ends = [t.datetime_complete.timestamp() for t in done if t.datetime_complete]
    wall = max(ends) - min(starts)
    busy = len(done) * seconds
    return {
        "workers": workers,
        "trials": len(done),
        "wall": wall,
        "efficiency": busy / (workers * wall),
        "overhead": (workers * wall - busy) / len(done),
    }


def main() -> None:
    """Start the stores, run each worker count, print a Markdown table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--seconds", type=float, default=2.0, help="objective time per trial")
    parser.add_argument("--trials-per-worker", type=int, default=4)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    rows = []
    with postgres() as pg, tempfile.TemporaryDirectory() as tmp:
        pg.create_database("optuna")
        pg.create_database("mlflow")
        with mlflow_server(pg.url("mlflow"), Path(tmp)) as tracking:
            for workers in args.workers:
                rows.append(
                    run_one(
                        workers, workers * args.trials_per_worker, args.seconds, pg.url("optuna"), tracking
                    )
                )
                print(f"{workers} workers done", flush=True)
    print(
        f"\n{args.seconds:g}-second trials, {args.trials_per_worker} per worker, PostgreSQL + MLflow server\n"
    )
    print("| workers | trials | wall (s) | efficiency | overhead per trial (s) |")
    print("|---|---|---|---|---|")
    for r in rows:
        cells = [f"{r['workers']:.0f}", f"{r['trials']:.0f}", f"{r['wall']:.1f}", f"{r['efficiency']:.1%}"]
        print("| " + " | ".join([*cells, f"{r['overhead']:.3f}"]) + " |")


if __name__ == "__main__":
    main()
