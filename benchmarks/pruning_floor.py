"""How little compute any pruner could spend to reach Hyperband's final regret.

Issue 5 asks a pruner to reach the validation regret that ``tpe+hyperband`` ends with
(after the budget's trials, same task and seed) with at most half of the compute
Hyperband spent to reach it. This module asks what pruners that know every trial's final
score in advance would spend, run over *Hyperband's own sequence of configs*:

- **clairvoyant**: stops every trial after its first report, except the first one whose
  final score reaches the target, which it trains in full. No pruner spends less on that
  sequence: every trial reports at least once, and the target needs one full training.
- **keeps every new best**: stops after its first report every trial that will not beat
  the best final score so far, and trains the others in full. A pruner that never stops a
  trial that would have become the study's best so far (a false prune of the incumbent,
  which no pruner can tell apart from a loser without knowing what comes next) spends no
  less on that sequence.

Each one's compute is divided by Hyperband's on the same run; the table gives medians over
runs (tasks that count, seeds 0-4). A pruner other than Hyperband changes what TPE
proposes once its random start is over; within TPE's start (its first 10 trials, Optuna's
default) every pruner sees the same configs, so the table also gives the medians over the
runs where Hyperband reached its final regret there.

    python -m benchmarks.pruning_floor [--families hgb mlp] [--results]

``--results`` also puts the table in its section of ``benchmarks/RESULTS.md``. About two
minutes per family on two processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from benchmarks._sections import family_args, write_section
from benchmarks.replay.data import FamilyData, TaskData, read_family
from benchmarks.replay.metrics import TaskStats, regret, run_curves, to_target, value_at
from benchmarks.replay.runner import Job, run_job
from benchmarks.replay.simulate import ReplayTrial

__all__ = ["RunFloor", "floor_costs", "run_floor"]

DATA = Path(__file__).parent / "data"
RESULTS = Path(__file__).parent / "RESULTS.md"
REFERENCE = "tpe+hyperband"
SEEDS = (0, 1, 2, 3, 4)
BUDGET = 50
TPE_STARTUP = 10

_FAMILIES: dict[str, FamilyData] = {}


@dataclass(frozen=True)
class RunFloor:
    """One run of Hyperband and what the two clairvoyant pruners spend on its configs.

    Attributes:
        hyperband: Hyperband's compute (full trainings) to reach its final regret.
        trials: The trial at which Hyperband reached it.
        clairvoyant: The clairvoyant pruner's compute to reach it.
        keeps_new_best: The compute of the pruner that keeps every new best.
    """

    hyperband: float
    trials: int
    clairvoyant: float
    keeps_new_best: float


def floor_costs(finals: Sequence[float], target: float, n_steps: int) -> tuple[float, float]:
    """Compute of the clairvoyant pruner and of the one that keeps every new best.

    Args:
        finals: The regret each config of the sequence ends with if trained in full, in order.
        target: The regret to reach.
        n_steps: Reports in one full training (a trial stopped at its first costs ``1 / n_steps``).

    Returns:
        ``(clairvoyant, keeps_new_best)``, each ``inf`` if no config reaches ``target``.
    """
    first = next((k for k, r in enumerate(finals) if r <= target), None)
    if first is None:
        return np.inf, np.inf
    clairvoyant = first / n_steps + 1.0
    best, spent = np.inf, 0.0
    for r in finals[: first + 1]:
        spent += 1.0 if r < best else 1.0 / n_steps
        best = min(best, r)
    return clairvoyant, spent


def run_floor(trials: Sequence[ReplayTrial], task: TaskData, budget: int = BUDGET) -> RunFloor | None:
    """The floors of one Hyperband run (``None`` for a run without trials).

    The target is read as the comparison reads it: until a trial completes, the run's regret
    is that of the task's worst config.
    """
    stats = TaskStats.of(task)
    trials = trials[:budget]
    curves = run_curves(trials, task, stats)
    target = value_at(curves.val, budget)
    reached, compute, _ = to_target(curves, target)
    if reached is None or compute is None:
        return None
    final = dict(zip(task.config_ids.tolist(), task.final_val.tolist(), strict=True))
    finals = [regret(final[t.config_id], stats.best_val, stats.median_val) for t in trials]
    clairvoyant, keeps = floor_costs(finals, target, trials[0].n_steps)
    return RunFloor(compute, reached, clairvoyant, keeps)


def _task_floors(path: str, task: str) -> list[RunFloor]:
    family = _FAMILIES.get(path) or _FAMILIES.setdefault(path, read_family(path))
    runs = run_job(Job(family.name, path, task, REFERENCE, SEEDS, BUDGET), family)
    floors = (run_floor(run.trials, family.tasks[task]) for run in runs)
    return [f for f in floors if f is not None]


def family_floors(path: Path, processes: int = 2) -> list[RunFloor]:
    """Every counted task's runs, in worker processes."""
    family = read_family(path)
    tasks = [name for name, task in family.tasks.items() if not TaskStats.of(task).saturated]
    with ProcessPoolExecutor(processes) as pool:
        return [f for floors in pool.map(partial(_task_floors, str(path)), tasks) for f in floors]


def to_markdown(rows: Sequence[tuple[str, Sequence[RunFloor]]]) -> str:
    """Medians per family as a Markdown table."""
    head = (
        "| family | runs | Hyperband's compute to its final regret | clairvoyant / Hyperband | "
        "keeps every new best / Hyperband | runs reaching it in TPE's start | "
        "clairvoyant / Hyperband, those runs | keeps every new best / Hyperband, those runs |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for family, floors in rows:
        hb = np.array([f.hyperband for f in floors])
        clair = np.array([f.clairvoyant for f in floors]) / hb
        keeps = np.array([f.keeps_new_best for f in floors]) / hb
        early = np.array([f.trials <= TPE_STARTUP for f in floors])
        cells = [
            family,
            str(len(floors)),
            f"{np.median(hb):.1f}",
            f"{np.median(clair):.2f}x",
            f"{np.median(keeps):.2f}x",
            f"{100 * early.mean():.0f}%",
            f"{np.median(clair[early]):.2f}x",
            f"{np.median(keeps[early]):.2f}x",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    """Print the table (and with ``--results``, write it into RESULTS.md)."""
    args = family_args(__doc__)
    table = to_markdown([(name, family_floors(DATA / f"{name}.parquet")) for name in args.families])
    print(table)
    if args.results:
        write_section(
            RESULTS,
            "pruning_floor",
            [
                "## How little a pruner could spend to reach Hyperband's final regret",
                "Generated by `python -m benchmarks.pruning_floor --results` (definitions in the "
                "module's docstring): `tpe+hyperband` replayed on every counted task, seeds 0-4, "
                f"{BUDGET} trials; two pruners that know every config's final score run over "
                "Hyperband's own configs. Medians over runs of their compute to Hyperband's final "
                "regret, divided by Hyperband's.",
                table,
            ],
        )


if __name__ == "__main__":
    main()
