"""Fit a :class:`CurveModel` on past learning curves (:class:`~autotweak.meta.Histories`).

Each complete past trial with a curve gives one example per prefix of its curve: the
features of the prefix and the change still to come, in the units of a *pseudo-study*
of its task. A pseudo-study is a random handful (5 to 40) of the task's trials, drawn
from its better part (the top 25% to 100%), as a real study that has concentrated on
good configs would hold; each task gets several, so the model learns to work with the
units a study of any size and focus gives it.

The tasks are split in two: the mean network learns on 80% of them, and the error
network and the residual quantiles come from the other 20%, which the mean network
never saw, so the intervals are those of a new task.

Example:
    >>> model = fit_curve_model(histories, load_space("hgb"))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from autotweak._validation import is_integer
from autotweak.curves._features import Reference, curve_features_batch, horizon
from autotweak.curves._model import CurveModel, Network
from autotweak.exceptions import AutotweakError
from autotweak.meta import Histories, TaskHistory
from autotweak.space import SearchSpace

__all__ = ["Examples", "TaskCurves", "fit_curve_model", "task_curves", "task_examples"]

_log = logging.getLogger(__name__)

LEVELS = np.linspace(0.005, 0.995, 199)
_TARGET_CLIP = 12.0
_MIN_TRIALS = 5
_MIN_EXAMPLES = 100  # rows per network: fewer cannot fit an early-stopped perceptron


@dataclass(frozen=True)
class TaskCurves:
    """Complete curves of one task observed at the same steps.

    Attributes:
        name: The task.
        values: ``(n_trials, n_steps)`` oriented curves (higher is better).
        fractions: ``(n_steps,)`` each step as a fraction of the last.
        units: ``(n_trials, n_dims)`` the configs in the unit cube.
    """

    name: str
    values: NDArray[np.float64]
    fractions: NDArray[np.float64]
    units: NDArray[np.float64]


@dataclass(frozen=True)
class Examples:
    """Training rows: features (curve, then config), target, task index, step index."""

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    task: NDArray[np.int64]
    step: NDArray[np.int64]


def task_curves(task: TaskHistory, space: SearchSpace) -> list[TaskCurves]:
    """The complete curves of ``task`` that fit ``space``, grouped by their steps."""
    sign = 1.0 if task.direction == "maximize" else -1.0
    groups: dict[tuple[int, ...], list[tuple[list[float], list[float]]]] = {}
    for trial in task.complete_trials():
        if len(trial.curve) < 2 or len(trial.curve) != len(trial.steps) or trial.steps[-1] <= 0:
            continue
        units = space.to_unit(trial.params) if not space.invalid(dict(trial.params)) else [None]
        curve = [sign * float(v) for v in trial.curve]
        if any(u is None for u in units) or not np.all(np.isfinite(curve)):
            continue
        groups.setdefault(tuple(trial.steps), []).append((curve, [float(u) for u in units if u is not None]))
    out = []
    for steps, rows in sorted(groups.items()):
        if len(rows) < _MIN_TRIALS:
            continue
        fractions = np.asarray(steps, dtype=np.float64) / steps[-1]
        values = np.array([r[0] for r in rows], dtype=np.float64)
        unit_rows = np.array([r[1] for r in rows], dtype=np.float64)
        out.append(TaskCurves(task.name, values, fractions, unit_rows))
    return out


def _pseudo_studies(finals: NDArray[np.float64], n: int, rng: np.random.Generator) -> list[NDArray[np.intp]]:
    """Members of ``n`` pseudo-studies: 5 to 40 trials drawn from the task's top 25% to 100%."""
    ordered = np.argsort(-finals, kind="stable")
    studies = []
    for _ in range(n):
        top = ordered[: max(_MIN_TRIALS, int(rng.uniform(0.25, 1.0) * len(ordered)))]
        size = int(rng.integers(_MIN_TRIALS, min(40, len(top)) + 1))
        studies.append(rng.choice(top, size=size, replace=False))
    return studies


def task_examples(curves: TaskCurves, index: int, rng: np.random.Generator, n_refs: int = 4) -> Examples:
    """One example per (trial, prefix) of ``curves``, each in the units of a pseudo-study."""
    values, fractions = curves.values, curves.fractions
    finals = values[:, -1]
    studies = _pseudo_studies(finals, n_refs, rng)
    refs = [Reference.of(finals[members]) for members in studies]
    xs, ys, steps = [], [], []
    for s in range(1, values.shape[1]):
        pick = (np.arange(len(values)) + s) % n_refs
        for r, (ref, members) in enumerate(zip(refs, studies, strict=True)):
            rows = np.flatnonzero(pick == r)
            if not len(rows):
                continue
            peers = values[members, s - 1]
            x = curve_features_batch(values[rows, :s], fractions[:s], ref.centre, ref.spread, peers)
            xs.append(np.hstack([x, curves.units[rows]]))
            change = (finals[rows] - values[rows, s - 1]) / ref.spread
            ys.append(np.clip(change, -_TARGET_CLIP, _TARGET_CLIP))
            steps.append(np.full(len(rows), s))
    y = np.concatenate(ys)
    return Examples(np.vstack(xs), y, np.full(len(y), index, dtype=np.int64), np.concatenate(steps))


def _concat(parts: Sequence[Examples]) -> Examples:
    return Examples(
        np.vstack([p.x for p in parts]),
        np.concatenate([p.y for p in parts]),
        np.concatenate([p.task for p in parts]),
        np.concatenate([p.step for p in parts]),
    )


def _subsample(ex: Examples, limit: int, rng: np.random.Generator) -> Examples:
    if len(ex.y) <= limit:
        return ex
    keep = np.sort(rng.choice(len(ex.y), size=limit, replace=False))
    return Examples(ex.x[keep], ex.y[keep], ex.task[keep], ex.step[keep])


def _mlp(x: NDArray[np.float64], y: NDArray[np.float64], hidden: Sequence[int], seed: int) -> Network:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    regressor = MLPRegressor(
        hidden_layer_sizes=tuple(hidden),
        alpha=1e-4,
        batch_size=256,
        learning_rate_init=2e-3,
        max_iter=60,
        early_stopping=True,
        n_iter_no_change=6,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a capped epoch count is intended
        net = regressor.fit((x - mean) / scale, y)
    weights = tuple(np.asarray(w, dtype=np.float64) for w in net.coefs_)
    biases = tuple(np.asarray(b, dtype=np.float64) for b in net.intercepts_)
    return Network(mean, scale, weights, biases)


def _check_fit_args(
    histories: Any, space: Any, hidden: Any, max_examples: Any, holdout: Any, seed: Any
) -> None:
    """Refuse arguments of :func:`fit_curve_model` that would fail deep inside scikit-learn."""

    def refuse(name: str, value: Any, rule: str) -> None:
        raise AutotweakError(f"'{name}' of fit_curve_model must be {rule}, got {name}={value!r}.")

    if not isinstance(histories, Histories):
        refuse(
            "histories", type(histories).__name__, "Histories (from read_table, read_mlflow or read_optuna)"
        )
    if not isinstance(space, SearchSpace):
        refuse("space", type(space).__name__, "a SearchSpace (autotweak.load_space)")
    if (
        isinstance(hidden, str | bytes)
        or not all(is_integer(h) and h >= 1 for h in hidden)
        or not len(hidden)
    ):
        refuse("hidden", hidden, "a non-empty sequence of integers >= 1")
    if not (is_integer(max_examples) and max_examples >= _MIN_EXAMPLES):
        refuse("max_examples", max_examples, f"an integer >= {_MIN_EXAMPLES}")
    if not (isinstance(holdout, float | int) and not isinstance(holdout, bool) and 0 < holdout < 1):
        refuse("holdout", holdout, "a fraction in (0, 1)")
    if not (is_integer(seed) and seed >= 0):
        refuse("seed", seed, "an integer >= 0")


def fit_curve_model(
    histories: Histories,
    space: SearchSpace,
    *,
    hidden: Sequence[int] = (64, 64),
    max_examples: int = 60_000,
    holdout: float = 0.2,
    seed: int = 0,
) -> CurveModel:
    """Train a curve model on the complete curves of ``histories`` that fit ``space``.

    Args:
        histories: Past tasks with learning curves.
        space: The search space of the configs.
        hidden: Hidden layer sizes of the mean network (the error network is half as wide).
        max_examples: Most training rows per network (subsampled at random beyond).
        holdout: Fraction of the tasks kept from the mean network for the error model.
        seed: Seed of every random choice (pseudo-studies, splits, network inits).

    Raises:
        AutotweakError: If fewer than two tasks have at least five complete curves.
    """
    _check_fit_args(histories, space, hidden, max_examples, holdout, seed)
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    groups = [g for task in histories.tasks for g in task_curves(task, space)]
    names = sorted({g.name for g in groups})
    if len(names) < 2:
        raise AutotweakError(
            "a curve model needs complete curves (5 or more per task) of >= 2 tasks fitting space "
            f"{space.name!r}, got {len(names)} tasks."
        )
    n_held = min(len(names) - 1, max(1, round(holdout * len(names))))
    held = set(rng.permutation(names)[:n_held].tolist())
    index = {name: i for i, name in enumerate(names)}
    parts = [task_examples(g, index[g.name], rng) for g in groups]
    train = _subsample(
        _concat([p for g, p in zip(groups, parts, strict=True) if g.name not in held]), max_examples, rng
    )
    calib = _subsample(
        _concat([p for g, p in zip(groups, parts, strict=True) if g.name in held]), max_examples, rng
    )
    mean_net = _mlp(train.x, train.y / horizon(train.x), hidden, seed)
    per_time = calib.y / horizon(calib.x) - mean_net(calib.x)
    scale_net = _mlp(calib.x, np.log(np.abs(per_time) + 1e-3), [max(4, h // 2) for h in hidden], seed)
    standard = per_time / np.exp(scale_net(calib.x))
    summary: dict[str, Any] = {
        "tasks": names,
        "calibration_tasks": sorted(held),
        "trials": int(sum(len(g.values) for g in groups)),
        "examples": {"mean": len(train.y), "error": len(calib.y)},
        "hidden": list(hidden),
        "seed": seed,
        "fit_seconds": round(time.perf_counter() - started, 1),
    }
    _log.info("curve model for %r fit on %d tasks in %.1f s", space.name, len(names), summary["fit_seconds"])
    return CurveModel(space, mean_net, scale_net, LEVELS.copy(), np.quantile(standard, LEVELS), summary)
