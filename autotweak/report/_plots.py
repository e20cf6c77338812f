"""The report's figures, drawn on plain matplotlib ``Figure`` objects (no pyplot, no global state)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from optuna.trial import FrozenTrial, TrialState

__all__ = ["curves_plot", "history_plot", "importance_plot", "whole_numbers"]

_COLORS = {TrialState.COMPLETE: "tab:blue", TrialState.PRUNED: "tab:orange", TrialState.FAIL: "tab:red"}


def history_plot(trials: list[FrozenTrial], maximize: bool, metric: str, path: Path) -> Path:
    """Each trial's value (pruned at its last report) and the best so far."""
    return _save(_history_figure(trials, maximize, metric), path)


def _history_figure(trials: list[FrozenTrial], maximize: bool, metric: str) -> Figure:
    fig = Figure(figsize=(7, 3.5))
    ax = fig.subplots()
    best: list[float] = []
    for trial in trials:
        value = _value(trial)
        if value is not None:
            ax.scatter(trial.number, value, s=14, color=_COLORS.get(trial.state, "grey"))
        if trial.state == TrialState.COMPLETE and trial.value is not None:
            pick = max if maximize else min
            best.append(pick([*best[-1:], trial.value]))
        elif best:
            best.append(best[-1])
        else:
            best.append(float("nan"))
    ax.plot(
        [t.number for t in trials], best, color="black", lw=1.2, label="best so far", drawstyle="steps-post"
    )
    ax.scatter([], [], color="tab:blue", s=14, label="complete")
    ax.scatter([], [], color="tab:orange", s=14, label="pruned (last report)")
    ax.set_xlabel("trial")
    whole_numbers(ax)
    ax.set_ylabel(metric)
    ax.legend(fontsize=8)
    return fig


def curves_plot(trials: list[FrozenTrial], metric: str, path: Path) -> Path:
    """Every learning curve; pruned trials in orange, ending where they were stopped."""
    return _save(_curves_figure(trials, metric), path)


def _curves_figure(trials: list[FrozenTrial], metric: str) -> Figure:
    # A one-point line draws nothing: one-step trials (most pruned ones) are dots, drawn in
    # one call with the marked ends of pruned trials, so that 500 trials stay readable.
    fig = Figure(figsize=(7, 3.5))
    ax = fig.subplots()
    dots: list[tuple[int, float, str]] = []
    ends: list[tuple[int, float]] = []
    for trial in trials:
        curve = sorted(trial.intermediate_values.items())
        if len(curve) > 1:
            steps, values = zip(*curve, strict=True)
            ax.plot(steps, values, lw=0.9, alpha=0.7, color=_COLORS.get(trial.state, "grey"))
        if curve and trial.state == TrialState.PRUNED:
            ends.append(curve[-1])
        elif len(curve) == 1:
            dots.append((*curve[0], _COLORS.get(trial.state, "grey")))
    if dots:
        dot_steps, dot_values, colors = zip(*dots, strict=True)
        ax.scatter(dot_steps, dot_values, s=10, alpha=0.7, color=colors, zorder=3)
    if ends:
        last_steps, last_values = zip(*ends, strict=True)
        ax.scatter(last_steps, last_values, s=12, marker="x", lw=0.8, color="tab:orange", zorder=3)
    ax.plot([], [], color="tab:blue", label="complete")
    ax.plot([], [], color="tab:orange", marker="x", ms=4, label="pruned (x: stopped here)")
    ax.set_xlabel("step")
    whole_numbers(ax)
    ax.set_ylabel(metric)
    ax.legend(fontsize=8)
    return fig


def whole_numbers(ax: Axes) -> None:
    """Ticks on whole numbers only along x (trials, steps): no step 2.5."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def importance_plot(importances: dict[str, float], path: Path, method: str) -> Path:
    """Hyperparameter importances as horizontal bars, by the evaluator named ``method``."""
    fig = Figure(figsize=(7, 0.5 + 0.4 * len(importances)))
    ax = fig.subplots()
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names], color="tab:blue")
    ax.set_xlabel(f"importance ({method})")
    return _save(fig, path)


def _value(trial: FrozenTrial) -> float | None:
    if trial.state == TrialState.COMPLETE:
        return trial.value
    if trial.state == TrialState.PRUNED and trial.intermediate_values:
        return trial.intermediate_values[max(trial.intermediate_values)]
    return None


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
