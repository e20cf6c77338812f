"""Tracking overhead: autotweak with full MLflow tracking vs bare Optuna, same storage.

A trivial objective reports 20 steps. Both arms run in this process on the same SQLite
Optuna storage with the same settings (WAL, heartbeats every 5 s), in blocks of trials
taking turns so that both see the same machine load; each arm is one study across its
blocks. A block's time per trial covers its trials from the first ask to the last tell,
every record written (``Study.flush``); opening and closing the study are left out. The
medians over blocks are compared. Trials this short make autotweak write their records in
a helper process where the machine has an idle core: it starts during the first block,
whose time is printed apart.

Two more arms say where the difference goes: autotweak with tracking off (what the engine
adds on the Optuna side) and MLflow's three client calls alone, with the same content,
per trial (create the run, one batched write, terminate: the floor of any tracker that
writes through ``MlflowClient``):

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
from mlflow import MlflowClient
from mlflow.entities import Metric as Point
from mlflow.entities import Param, RunTag

import autotweak
from autotweak._locations import enable_wal
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


def _tracked_block(study: autotweak.Study, trials: int) -> float:
    """Seconds per trial of ``trials`` more trials of ``study``, their records written."""
    start = time.perf_counter()
    for _ in range(trials):
        trial = study.ask()
        assert trial is not None  # the budget covers every block
        study.tell(trial, trivial(trial.config, trial))
    study.flush()
    return (time.perf_counter() - start) / trials


def _mlflow_alone(client: MlflowClient, experiment_id: str, parent: str, trials: int) -> float:
    """MLflow's calls for one trial each, with a trial's tags, curve, params and state."""
    start = time.perf_counter()
    for number in range(trials):
        tags = {f"autotweak.tag{i}": "value" for i in range(16)} | {"mlflow.parentRunId": parent}
        run_id = client.create_run(experiment_id, tags=tags, run_name=f"trial-{number:04d}").info.run_id
        curve = [Point("score", 0.5 * step, 0, step) for step in range(1, STEPS + 1)]
        finals = [Point(key, 1.0, 0, 0) for key in ("duration_s", "final_score", "compute")]
        client.log_batch(
            run_id,
            metrics=curve + finals,
            params=[Param("x", "0.5")],
            tags=[RunTag("autotweak.state", "complete")],
        )
        client.set_terminated(run_id, "FINISHED")
    return (time.perf_counter() - start) / trials


def measure(folder: Path, trials: int, blocks: int) -> dict[str, list[float]]:
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
    enable_wal(folder / "mlflow.db")
    client = MlflowClient(tracking)
    experiment_id = client.create_experiment("mlflow-alone")
    parent = client.create_run(experiment_id).info.run_id
    times: dict[str, list[float]] = {arm: [] for arm in ARMS}
    total = trials * blocks
    with (
        autotweak.Study(_experiment(storage, tracking, "tracked", total), track=True) as tracked,
        autotweak.Study(_experiment(storage, tracking, "untracked", total), track=False) as untracked,
    ):
        for _ in range(blocks):
            start = time.perf_counter()
            bare.optimize(_bare_objective, n_trials=trials)
            times["bare"].append((time.perf_counter() - start) / trials)
            times["tracked"].append(_tracked_block(tracked, trials))
            times["untracked"].append(_tracked_block(untracked, trials))
            times["mlflow"].append(_mlflow_alone(client, experiment_id, parent, trials))
    return times


ARMS = {
    "bare": "bare Optuna",
    "tracked": "autotweak + MLflow",
    "untracked": "autotweak, tracking off",
    "mlflow": "MLflow's 3 calls alone",
}


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
        times = measure(Path(tmp), args.trials, args.blocks)
    medians = {arm: statistics.median(values) for arm, values in times.items()}
    n = args.trials * args.blocks
    for arm, label in ARMS.items():
        print(f"{label:<25} median {medians[arm] * 1000:7.1f} ms/trial  ({n} trials in {args.blocks} blocks)")
    bare = medians["bare"]
    print(f"ratio {medians['tracked'] / bare:.2f}x (target <= 1.5x)")
    print(
        f"first block, while the tracking helper starts: autotweak {times['tracked'][0] * 1000:.1f} ms/trial"
        f" against bare {times['bare'][0] * 1000:.1f} ms/trial"
    )
    print(
        f"of which: engine {medians['untracked'] / bare:.2f}x with tracking off; "
        f"MLflow's calls alone {medians['mlflow'] / bare:.2f}x of a bare trial"
    )


if __name__ == "__main__":
    main()
