"""Write RESULTS.md and its plots from a comparison's metrics.

Each table is followed by the line that produced it (command, commit, seeds, date), so a
table copied elsewhere keeps its provenance. Plots go to ``results/`` next to the
Markdown file and are embedded with relative links.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._sections import kept_sections
from benchmarks.replay.methods import METHODS
from benchmarks.replay.metrics import SATURATION, TARGET, TOP
from benchmarks.replay.results import (
    Curves,
    budgets_for,
    compute_table,
    matching_table,
    rank_table,
    regret_table,
    target_table,
)

__all__ = ["Provenance", "SuiteInfo", "method_order", "write_report"]

RESULTS_DIR = "results"


@dataclass(frozen=True)
class Provenance:
    """Where the numbers come from."""

    command: str
    commit: str
    seeds: Sequence[int]
    date: str
    seconds: float
    processes: int

    def line(self) -> str:
        """The provenance line written under every table."""
        return f"_`{self.command}` · commit `{self.commit}` · seeds {_seeds(self.seeds)} · {self.date}_"


@dataclass(frozen=True)
class SuiteInfo:
    """What a suite tested, for the report's notes."""

    key: str
    tasks: list[str]
    saturated: dict[str, float]
    train_tasks: int
    notes: list[str] = field(default_factory=list)
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # method -> mean CPU s per run


def _seeds(seeds: Sequence[int]) -> str:
    values = sorted(seeds)
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}"
    return ", ".join(map(str, values))


def method_order(labels: Sequence[str]) -> list[str]:
    """Labels in registry order (a regime's variants after their method)."""
    names = list(METHODS)

    def key(label: str) -> tuple[int, str]:
        base = label.split("[")[0]
        return (names.index(base) if base in names else len(names), label)

    return sorted(set(labels), key=key)


# -- formatting ---------------------------------------------------------------------------
def _number(value: float, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _regret_markdown(table: pd.DataFrame, ks: Sequence[int], order: Sequence[str], with_se: bool) -> str:
    rows = []
    for method in order:
        if method not in table.index:
            continue
        cells = []
        for k in ks:
            mean, se = table.at[method, f"K={k}"], table.at[method, f"K={k} se"]
            cells.append(f"{_number(mean)} ± {_number(se)}" if with_se else _number(mean))
        rows.append([f"`{method}`", *cells])
    return _markdown(["method", *[f"K={k}" for k in ks]], rows)


def _to_target_cell(value: float, budget: int | None, digits: int) -> str:
    if math.isinf(value):
        return "not reached" if budget is None else f">{budget}"
    return _number(value, digits)


def _target_markdown(table: pd.DataFrame, order: Sequence[str], budget: int) -> str:
    rows = []
    for method in order:
        if method not in table.index:
            continue
        row = table.loc[method]
        cap = 256 if method == "full_grid" else budget
        rows.append(
            [
                f"`{method}`",
                f"{100 * row['reached']:.0f}%",
                _to_target_cell(row["trials"], cap, 0),
                _to_target_cell(row["compute"], None, 1),
                _to_target_cell(row["seconds"], None, 1),
                _number(row["compute_used"], 1),
                _number(row["pruned"], 1),
                _number(row["false_prunes"], 2),
            ]
        )
    header = [
        "method",
        "runs reaching target",
        "trials (median)",
        "compute (median)",
        "simulated s (median)",
        f"compute in {budget} trials",
        f"pruned of {budget}",
        f"false prunes (of the run's top {TOP})",
    ]
    return _markdown(header, rows)


def _compute_markdown(table: pd.DataFrame, order: Sequence[str]) -> str:
    columns = list(table.columns)
    rows = [[f"`{m}`", *[_number(table.at[m, c]) for c in columns]] for m in order if m in table.index]
    return _markdown(["method", *columns], rows)


MATCH_REFERENCE = "tpe+hyperband"


def _matching_section(curves: Curves, suite: str, order: Sequence[str], budget: int) -> list[tuple[str, str]]:
    """Compute to reach Hyperband's final regret, when Hyperband is in the comparison."""
    if MATCH_REFERENCE not in order:
        return []
    table = matching_table(curves, suite, MATCH_REFERENCE, budget)
    rows = [
        [
            f"`{m}`",
            f"{100 * table.at[m, 'reached']:.0f}%",
            _to_target_cell(table.at[m, "compute"], None, 1),
            _to_target_cell(table.at[m, "ratio"], None, 2),
        ]
        for m in order
        if m in table.index
    ]
    header = ["method", "runs reaching it", "compute (median)", f"compute / `{MATCH_REFERENCE}`'s (median)"]
    title = f"Compute to reach `{MATCH_REFERENCE}`'s final regret (after {budget} trials, same task and seed)"
    return [(title, _markdown(header, rows))]


def _rank_markdown(table: pd.DataFrame, ks: Sequence[int], order: Sequence[str]) -> str:
    rows = [[f"`{m}`", *[_number(table.at[m, f"K={k}"], 2) for k in ks]] for m in order if m in table.index]
    return _markdown(["method", *[f"K={k}" for k in ks]], rows)


def _per_task_markdown(frame: pd.DataFrame, order: Sequence[str], budget: int) -> str:
    kept = frame[~frame["saturated"]]
    table = kept.pivot_table(index="task", columns="method", values=f"val@{budget}", aggfunc="mean")
    methods = [m for m in order if m in table.columns]
    rows = [[f"`{task}`", *[_number(table.at[task, m]) for m in methods]] for task in table.index]
    return _markdown(["task", *[f"`{m}`" for m in methods]], rows)


# -- plots --------------------------------------------------------------------------------
def _plot(
    path: Path,
    order: Sequence[str],
    series: Callable[[str], tuple[np.ndarray, np.ndarray]],
    xlabel: str,
    title: str,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=110)
    for method in order:
        x, y = series(method)
        if len(x):
            axes.plot(x, y, label=method, linestyle="--" if method == "full_grid" else "-")
    axes.set_xscale("log")
    axes.axhline(TARGET, color="grey", linewidth=0.8, linestyle=":")
    axes.set_xlabel(xlabel)
    axes.set_ylabel("normalized regret (validation)")
    axes.set_ylim(bottom=0)
    axes.set_title(title)
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _plots(out_dir: Path, suite: str, curves: Curves, order: Sequence[str], budget: int) -> list[str]:
    folder = out_dir / RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() or c in "-_" else "_" for c in suite)
    trials = np.arange(1, budget + 1, dtype=np.float64)

    def by_trials(method: str) -> tuple[np.ndarray, np.ndarray]:
        return trials, curves.by_trials(suite, method, budget)

    def by_compute(method: str) -> tuple[np.ndarray, np.ndarray]:
        end = curves.mean_compute(suite, method, budget)
        if not end >= 1:
            return np.array([]), np.array([])
        grid = np.geomspace(1.0, end, 120)
        return grid, curves.by_compute(suite, method, grid)

    names = [f"{slug}_regret_vs_trials.png", f"{slug}_regret_vs_compute.png"]
    _plot(folder / names[0], order, by_trials, "trials", f"{suite}: regret vs trials")
    _plot(folder / names[1], order, by_compute, "compute (full trainings)", f"{suite}: regret vs compute")
    return [f"{RESULTS_DIR}/{name}" for name in names]


# -- the document -------------------------------------------------------------------------
def _suite_section(
    info: SuiteInfo, frame: pd.DataFrame, curves: Curves, budget: int, out_dir: Path, prov: Provenance
) -> list[str]:
    ks = budgets_for(budget)
    order = method_order(frame["method"].unique().tolist())
    n_tasks = len(info.tasks) - len(info.saturated)
    scope = f"{n_tasks} non-saturated tasks x {len(prov.seeds)} seeds"
    plots = _plots(out_dir, info.key, curves, order, budget)
    sections = [
        (
            f"Normalized regret, validation (mean ± s.e. over tasks; {scope})",
            _regret_markdown(regret_table(frame, "val", ks), ks, order, with_se=True),
        ),
        (
            "Normalized regret, test (config picked by validation)",
            _regret_markdown(regret_table(frame, "test", ks), ks, order, with_se=False),
        ),
        (
            "HPO-B convention (denominator best - min), validation",
            _regret_markdown(regret_table(frame, "hpob", ks), ks, order, with_se=False),
        ),
        (
            f"Trials-to-target and compute-to-target (validation regret <= {TARGET})",
            _target_markdown(target_table(frame), order, budget),
        ),
        (
            "Normalized regret, validation, at equal compute (C full trainings)",
            _compute_markdown(compute_table(frame), order),
        ),
        *_matching_section(curves, info.key, order, budget),
        (
            "Average rank (1 = best; per task, mean regret over seeds)",
            _rank_markdown(rank_table(frame, ks), ks, order),
        ),
        (
            f"Per task: validation regret at K={budget} (mean over seeds)",
            _per_task_markdown(frame, order, budget),
        ),
    ]
    if info.cpu_seconds:
        sections.append(
            (f"Cost: CPU seconds per {budget}-trial run (mean; fits included)", _cpu_markdown(info, order))
        )
    lines = [f"## {info.key}", "", *_suite_notes(info), ""]
    for title, table in sections:
        lines += [f"### {info.key}: {title}", "", table, "", prov.line(), ""]
    lines += [f"### {info.key}: plots", ""]
    lines += [f"![{info.key} {Path(p).stem}]({p})" for p in plots] + ["", prov.line(), ""]
    return lines


def _cpu_markdown(info: SuiteInfo, order: Sequence[str]) -> str:
    """Each method's mean CPU time per run, over every task and seed (this machine's)."""
    rows = [[f"`{m}`", _number(info.cpu_seconds[m], 2)] for m in order if m in info.cpu_seconds]
    return _markdown(["method", "CPU s / run"], rows)


def _suite_notes(info: SuiteInfo) -> list[str]:
    saturated = ", ".join(f"`{t}` ({spread:.4f})" for t, spread in sorted(info.saturated.items()))
    lines = [
        f"- Tasks present ({len(info.tasks)}): {', '.join(f'`{t}`' for t in info.tasks)}.",
        f"- Saturated tasks left out of the averages (best - median validation < {SATURATION}): "
        f"{saturated or 'none'}.",
        f"- Meta-learners trained on {info.train_tasks} public tasks (minus the test task's group).",
    ]
    return lines + [f"- {note}" for note in info.notes]


def write_report(
    out: Path,
    frame: pd.DataFrame,
    curves: Curves,
    suites: Sequence[SuiteInfo],
    budget: int,
    prov: Provenance,
    notes: Sequence[str] = (),
) -> None:
    """Write the Markdown report to ``out`` and its plots to ``out.parent / "results"``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# autotweak-bench: replayed comparison of search methods",
        "",
        'Generated by `python -m benchmarks.run` (see `benchmarks/README.md`, "Running the comparison").',
        "",
        f"- Command: `{prov.command}`",
        f"- Commit: `{prov.commit}`; date: {prov.date}; seeds: {_seeds(prov.seeds)}; "
        f"budget: {budget} trials.",
        f"- Run time: {prov.seconds:.0f} s with {prov.processes} processes.",
        *[f"- {note}" for note in notes],
        "",
    ]
    for info in suites:
        lines += _suite_section(info, frame[frame["suite"] == info.key], curves, budget, out.parent, prov)
    for section in kept_sections(out):  # written by other benchmarks (scaling)
        lines += [section, ""]
    out.write_text("\n".join(lines))
