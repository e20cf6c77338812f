"""What no transfer method can beat on the corpus: choices made *knowing* the test task.

A meta-learner proposes its first configs before it has seen the new task's scores. On
the recorded corpus we can ask what the best such proposals could achieve if the test
tasks' scores were known (leaked); a method that learns from other tasks only can match
these numbers at best. Per family, over the tasks that count (not saturated):

- **best single config**: the one config with the lowest mean regret over the tasks,
  picked knowing all of them: no fixed first proposal does better at K=1;
- **best past winner**: for each task, the best (for that task) of the other tasks'
  winning configs: no method whose first proposal is some past task's winner does
  better at K=1, whichever way it picks that task;
- **greedy portfolio, in-sample**: K configs added one at a time, each the one that
  lowers the mean regret most over the tasks (the best fixed set is at most a little
  lower; for K=1 it is exactly the best single config).

Regret is the harness's normalized regret on final validation scores.

A second table asks how much of that regret is noise. Validation sets here are small (the
median task's best config beats its median one by a few validation examples), so the
configs that score best on validation are partly the ones that got lucky on its examples.
The **second sample** reference knows the test task as well as an independent sample of
the same size does: it orders the task's configs by their *test* scores (the test split
is drawn like the validation split and is as large) and takes the first K; its
validation regret is what knowing the task, short of its validation examples' luck, buys.
It is a reference, not a bound: a method that has run configs on the validation split sees
their luck, and similar configs share it; and a noise-free ranking of the task would do
somewhat better than a second noisy sample's.

    python -m benchmarks.bounds [--families hgb mlp] [--results]

``--results`` also puts the table in its section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import comb
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.stats import spearmanr

from benchmarks._sections import family_args, write_section
from benchmarks.replay.data import FamilyData, read_family
from benchmarks.replay.metrics import TaskStats, regret

__all__ = ["Bounds", "NoiseFloor", "bounds", "noise_floor", "regret_matrix"]

KS = (1, 5, 10)
NOISE_KS = (1, 5, 10, 25)
DATA = Path(__file__).parent / "data"
RESULTS = Path(__file__).parent / "RESULTS.md"


@dataclass(frozen=True)
class Bounds:
    """The leaked-choice bounds of one family (mean normalized regret over counted tasks)."""

    family: str
    n_tasks: int
    best_single: float
    best_past_winner: float
    portfolio: Mapping[int, float]


def regret_matrix(family: FamilyData) -> tuple[list[str], NDArray[np.float64], NDArray[np.int64]]:
    """Counted tasks, their regret matrix ``[config, task]`` and every task's winning config row.

    Rows are the family's config ids that every task recorded; ``winners`` has one entry
    per task of the family (saturated ones too: their winners are past winners as well).
    """
    common = sorted(set.intersection(*(set(t.config_ids.tolist()) for t in family.tasks.values())))
    finals = {}
    for name, task in family.tasks.items():
        row = {int(c): i for i, c in enumerate(task.config_ids)}
        finals[name] = task.final_val[[row[c] for c in common]]
    winners = np.array([int(np.argmax(v)) for v in finals.values()], dtype=np.int64)
    counted = [name for name, task in family.tasks.items() if not TaskStats.of(task).saturated]
    columns = []
    for name in counted:
        stats = TaskStats.of(family.tasks[name])
        columns.append([regret(float(v), stats.best_val, stats.median_val) for v in finals[name]])
    return counted, np.array(columns, dtype=np.float64).T, winners


def bounds(family: FamilyData, ks: Sequence[int] = KS) -> Bounds:
    """The three bounds of ``family`` (see the module's docstring)."""
    counted, matrix, winners = regret_matrix(family)
    names = list(family.tasks)
    past = []
    for j, name in enumerate(counted):
        others = [w for i, w in enumerate(winners) if names[i] != name]
        past.append(float(matrix[others, j].min()))
    return Bounds(
        family=family.name,
        n_tasks=len(counted),
        best_single=float(matrix.mean(axis=1).min()),
        best_past_winner=float(np.mean(past)),
        portfolio=greedy_portfolio(matrix, ks),
    )


def greedy_portfolio(matrix: NDArray[np.float64], ks: Sequence[int]) -> dict[int, float]:
    """Mean regret of the in-sample greedy portfolio after each of ``ks`` configs."""
    best = np.full(matrix.shape[1], np.inf)
    out = {}
    for k in range(1, max(ks) + 1):
        means = np.minimum(best[None, :], matrix).mean(axis=1)
        best = np.minimum(best, matrix[int(np.argmin(means))])
        if k in ks:
            out[k] = float(best.mean())
    return out


@dataclass(frozen=True)
class NoiseFloor:
    """How much of one family's validation regret is the validation split's noise.

    Attributes:
        family: The family's name.
        n_tasks: Counted (not saturated) tasks.
        second_sample: Mean validation regret of the first K configs by test score, per K.
        upper_half_correlation: Median over tasks of the Spearman correlation of validation
            and test scores among the configs in the upper half by validation score.
        gap_examples: Median over tasks of best - median validation score, in steps of the
            task's validation accuracy (one validation example each).
    """

    family: str
    n_tasks: int
    second_sample: Mapping[int, float]
    upper_half_correlation: float
    gap_examples: float


def noise_floor(family: FamilyData, ks: Sequence[int] = NOISE_KS) -> NoiseFloor:
    """The second-sample reference of ``family`` (see the module's docstring)."""
    counted = [name for name, task in family.tasks.items() if not TaskStats.of(task).saturated]
    per_k: dict[int, list[float]] = {k: [] for k in ks}
    correlations, gaps = [], []
    for name in counted:
        task = family.tasks[name]
        stats = TaskStats.of(task)
        val, test = task.final_val, task.final_test
        regrets = (stats.best_val - val) / (stats.best_val - stats.median_val)
        for k in ks:
            per_k[k].append(expected_best_of_first(regrets, test, k))
        upper = val >= stats.median_val
        correlations.append(float(spearmanr(val[upper], test[upper]).statistic))
        steps = np.diff(np.unique(val))
        gaps.append((stats.best_val - stats.median_val) / float(steps.min()))
    return NoiseFloor(
        family=family.name,
        n_tasks=len(counted),
        second_sample={k: float(np.mean(v)) for k, v in per_k.items()},
        upper_half_correlation=float(np.nanmedian(correlations)),
        gap_examples=float(np.median(gaps)),
    )


def expected_best_of_first(regrets: NDArray[np.float64], order_by: NDArray[np.float64], k: int) -> float:
    """Expected lowest regret among the ``k`` configs with the highest ``order_by``.

    Ties in ``order_by`` are taken in a uniformly random order; the expectation over that
    order is exact: of a tied group of ``g`` configs of which ``m`` are taken, the ``i``-th
    lowest regret is the group's lowest taken with probability ``C(g - i, m - 1) / C(g, m)``.
    """
    levels = np.unique(order_by)[::-1]
    best_taken, left = np.inf, k
    for level in levels:
        group = np.sort(regrets[order_by == level])
        if len(group) <= left:
            best_taken = min(best_taken, float(group[0]))
            left -= len(group)
            if left == 0:
                return best_taken
            continue
        g, m = len(group), left
        weights = np.array([comb(g - i, m - 1) for i in range(1, g + 1)], dtype=np.float64) / comb(g, m)
        return float(np.sum(weights * np.minimum(group, best_taken)))
    return best_taken


def noise_markdown(rows: Sequence[NoiseFloor]) -> str:
    """The second-sample reference as a Markdown table."""
    ks = sorted(rows[0].second_sample) if rows else []
    head = "| family | tasks counted | " + " | ".join(f"second sample K={k}" for k in ks)
    head += " | validation/test rank correlation, upper half | best - median, validation examples |"
    lines = [head, "|---|---:|" + "---:|" * (len(ks) + 2)]
    for n in rows:
        cells = [n.family, str(n.n_tasks), *(f"{n.second_sample[k]:.3f}" for k in ks)]
        cells += [f"{n.upper_half_correlation:.2f}", f"{n.gap_examples:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_markdown(rows: Sequence[Bounds]) -> str:
    """The bounds as a Markdown table."""
    ks = sorted(rows[0].portfolio) if rows else []
    head = "| family | tasks counted | best single config (K=1) | best past winner (K=1) | "
    head += " | ".join(f"greedy portfolio K={k}" for k in ks) + " |"
    lines = [head, "|---|---:|---:|---:|" + "---:|" * len(ks)]
    for b in rows:
        cells = [b.family, str(b.n_tasks), f"{b.best_single:.3f}", f"{b.best_past_winner:.3f}"]
        cells += [f"{b.portfolio[k]:.3f}" for k in ks]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    """Print the bounds (and with ``--results``, write them into RESULTS.md)."""
    args = family_args(__doc__)
    families = [read_family(DATA / f"{name}.parquet") for name in args.families]
    table = to_markdown([bounds(family) for family in families])
    noise = noise_markdown([noise_floor(family) for family in families])
    print(table, noise, sep="\n\n")
    if args.results:
        write_section(
            RESULTS,
            "bounds",
            [
                "## What a transfer method cannot beat: choices that know the test task",
                "Generated by `python -m benchmarks.bounds --results` (definitions in the module's "
                "docstring). Mean normalized regret (validation) over the counted tasks of the data "
                "files as committed; each number is a choice made with the test tasks' scores in "
                "hand, so a method that learns from other tasks only can at best match it.",
                table,
                "How much of the regret is the validation split's noise: the *second sample* "
                "reference orders each task's configs by their test scores (an independent split "
                "as large as the validation one) and takes the first K; its validation regret is "
                "what knowing the task, short of the luck of its validation examples, buys. A "
                "reference, not a bound (see the module's docstring).",
                noise,
            ],
        )


if __name__ == "__main__":
    main()
