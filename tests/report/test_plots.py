"""The report's figures: every trial the learning-curves figure spans is drawn."""

from __future__ import annotations

import optuna
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from optuna.trial import FrozenTrial, TrialState, create_trial

from autotweak.report._plots import _curves_figure, _history_figure


def _trial(state: TrialState, curve: dict[int, float], number: int) -> FrozenTrial:
    value = curve[max(curve)] if state == TrialState.COMPLETE else None
    trial = create_trial(state=state, value=value, intermediate_values=curve)
    trial.number = number
    return trial


def _visible(ax: Axes) -> set[tuple[float, float]]:
    """The data points a reader sees: a marker, a vertex of a line of two or more points, a dot."""
    seen: set[tuple[float, float]] = set()
    for line in ax.lines:
        points = list(zip(line.get_xdata(), line.get_ydata(), strict=True))
        marked = line.get_marker() not in ("None", None, "", " ")
        drawn = len(points) > 1 and line.get_linestyle() != "None"
        if marked or drawn:
            seen.update((float(x), float(y)) for x, y in points)
    for collection in ax.collections:
        seen.update((float(x), float(y)) for x, y in collection.get_offsets())
    return seen


def _only_axes(fig: Figure) -> Axes:
    (ax,) = fig.axes
    return ax


def test_one_step_trials_and_where_pruned_trials_stopped_are_drawn():
    trials = [
        _trial(TrialState.COMPLETE, {0: 0.5, 1: 0.6, 2: 0.7}, 0),
        *(_trial(TrialState.PRUNED, {0: 0.1 + i / 100}, i + 1) for i in range(5)),  # most pruned trials
        _trial(TrialState.PRUNED, {0: 0.2, 1: 0.3}, 6),
    ]
    ax = _only_axes(_curves_figure(trials, "acc"))
    visible = _visible(ax)
    for trial in trials:
        assert {(float(s), v) for s, v in trial.intermediate_values.items()} <= visible, trial.number
    ends = {(float(x), float(y)) for c in ax.collections for x, y in c.get_offsets()}
    assert {(1.0, 0.3), (0.0, 0.1)} <= ends, "a pruned trial's last report is marked, as the README says"
    assert (2.0, 0.7) not in ends, "a complete trial's end is not marked as pruned"


def test_a_study_whose_only_trial_reported_once_is_not_an_empty_plot():
    ax = _only_axes(_curves_figure([_trial(TrialState.COMPLETE, {3: 0.9}, 0)], "acc"))
    assert (3.0, 0.9) in _visible(ax)


def test_five_hundred_trials_stay_in_few_artists(tmp_path):
    """One artist per multi-step curve at most; the points are drawn together, small."""
    study = optuna.create_study()
    for i in range(500):
        steps = 3 if i % 5 == 0 else 1
        state = TrialState.COMPLETE if steps == 3 else TrialState.PRUNED
        study.add_trial(_trial(state, {s: i / 500 + s for s in range(steps)}, i))
    ax = _only_axes(_curves_figure(study.trials, "acc"))
    assert len(ax.collections) <= 3 and len(ax.lines) <= 100 + 3
    assert all(size <= 12 for c in ax.collections for size in c.get_sizes())


def test_steps_and_trials_are_ticked_on_whole_numbers():
    """Twenty steps once read 2.5, 5.0, 7.5 along the curves' axis."""
    trials = [_trial(TrialState.COMPLETE, {s: s / 20 for s in range(1, 21)}, n) for n in range(7)]
    for fig in (_curves_figure(trials, "acc"), _history_figure(trials, True, "acc")):
        ax = _only_axes(fig)
        fig.canvas.draw()
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert len(ticks) >= 3 and all(float(t).is_integer() for t in ticks), ticks
