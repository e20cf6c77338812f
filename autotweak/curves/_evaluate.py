"""How good a curve model is on tasks it was not trained on: coverage and error.

Example:
    >>> evaluate_curve_model(model, held_out_histories)["coverage_80"]  # doctest: +SKIP
    0.81
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autotweak.curves._fit import task_curves, task_examples
from autotweak.curves._model import CurveModel
from autotweak.meta import Histories

__all__ = ["evaluate_curve_model"]


def evaluate_curve_model(
    model: CurveModel, histories: Histories, *, min_fraction: float = 0.2, seed: int = 1
) -> dict[str, Any]:
    """Calibration and accuracy of ``model`` on ``histories`` (tasks it did not learn from).

    Every prefix of every complete curve is predicted, in the units of pseudo-studies of
    its task (as in training). Only prefixes at or after ``min_fraction`` of the training
    count: earlier, the pruner does not act.

    Returns:
        ``coverage_80`` / ``coverage_50``: share of final scores inside the predicted 80% /
        50% central intervals; ``mae`` and ``mae_no_change``: mean absolute error of the
        predicted median and of "the curve stays where it is", in study spreads;
        ``by_fraction``: the same per step-fraction bucket; ``rows``, ``tasks``.
    """
    rng = np.random.default_rng(seed)
    groups = [g for task in histories.tasks for g in task_curves(task, model.space)]
    parts = [task_examples(g, i, rng) for i, g in enumerate(groups)]
    if not parts:
        return {"rows": 0, "tasks": 0}
    x = np.vstack([p.x for p in parts])
    y = np.concatenate([p.y for p in parts])
    keep = x[:, 0] >= min_fraction
    x, y = x[keep], y[keep]
    mu, sigma = model.location(x)
    q = np.interp([0.1, 0.25, 0.5, 0.75, 0.9], model.levels, model.quantiles)
    bounds = mu[:, None] + sigma[:, None] * q[None, :]
    result = _scores(y, bounds)
    buckets = [(min_fraction, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 1.0)]
    result["by_fraction"] = {
        f"{lo:.1f}-{hi:.1f}": _scores(y[m], bounds[m])
        for lo, hi in buckets
        if (m := (x[:, 0] >= lo) & (x[:, 0] < hi)).any()
    }
    result["tasks"] = len({g.name for g in groups})
    return result


def _scores(y: np.ndarray, bounds: np.ndarray) -> dict[str, Any]:
    return {
        "rows": len(y),
        "coverage_80": round(float(np.mean((y >= bounds[:, 0]) & (y <= bounds[:, 4]))), 4),
        "coverage_50": round(float(np.mean((y >= bounds[:, 1]) & (y <= bounds[:, 3]))), 4),
        "mae": round(float(np.mean(np.abs(y - bounds[:, 2]))), 4),
        "mae_no_change": round(float(np.mean(np.abs(y))), 4),
    }
