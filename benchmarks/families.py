"""The model families of autotweak-bench: train one config on one task, record its curve.

A family's training function returns the validation and test accuracy at each of its
steps (``hgb``: every 5 boosting iterations, 20 steps; ``mlp``: every epoch, 30 steps)
and ``fit_seconds``, the config's training time. Training runs on one thread and
``fit_seconds`` is its CPU time (``time.process_time``), so it measures the compute and not
how busy the machine was; scoring the curve is not counted.

Example:
    >>> from benchmarks.tasks import load_task
    >>> curve = FAMILIES["hgb"].train(load_task("sklearn_iris"), {"learning_rate": 0.1})
    >>> curve.steps[:3], len(curve.val_scores)
    ((5, 10, 15), 20)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from benchmarks.tasks import Task

if TYPE_CHECKING:
    import torch

__all__ = ["FAMILIES", "Curve", "Family", "train_hgb", "train_mlp"]

HGB_ITERATIONS = 100
HGB_EVERY = 5
MLP_EPOCHS = 30


@dataclass(frozen=True)
class Curve:
    """The learning curve of one config on one task."""

    steps: tuple[int, ...]
    val_scores: tuple[float, ...]
    test_scores: tuple[float, ...]
    fit_seconds: float


@dataclass(frozen=True)
class Family:
    """A model family: its name (also its search space's name), steps and trainer."""

    name: str
    steps: tuple[int, ...]
    train: Callable[[Task, Mapping[str, Any]], Curve]


# -- hgb ----------------------------------------------------------------------------------
def train_hgb(task: Task, config: Mapping[str, Any]) -> Curve:
    """Fit ``HistGradientBoostingClassifier`` for 100 iterations; score every 5th stage.

    Args:
        task: The preprocessed task.
        config: Keyword arguments of the classifier (the ``hgb`` space's parameters).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    model = HistGradientBoostingClassifier(
        max_iter=HGB_ITERATIONS, early_stopping=False, random_state=0, **config
    )
    steps = tuple(range(HGB_EVERY, HGB_ITERATIONS + 1, HGB_EVERY))
    # One OpenMP thread, as in build workers: on a busy machine more threads spin and crawl.
    with threadpool_limits(limits=1, user_api="openmp"):
        start = time.process_time()
        model.fit(task.X_train, task.y_train)
        fit_seconds = time.process_time() - start
        val = _staged_accuracy(model.staged_predict(task.X_valid), task.y_valid, steps)
        test = _staged_accuracy(model.staged_predict(task.X_test), task.y_test, steps)
    return Curve(steps, val, test, fit_seconds)


def _staged_accuracy(
    stages: Iterable[NDArray[Any]], y: NDArray[np.int64], steps: tuple[int, ...]
) -> tuple[float, ...]:
    """Accuracy after each iteration in ``steps`` (1-based) of a ``staged_predict`` stream.

    A model that stopped before the last step keeps its last predictions for the rest.
    """
    wanted = set(steps)
    scores: list[float] = []
    last = float("nan")
    for iteration, predicted in enumerate(stages, start=1):
        last = float(np.mean(predicted == y))
        if iteration in wanted:
            scores.append(last)
    return tuple(scores + [last] * (len(steps) - len(scores)))


# -- mlp ----------------------------------------------------------------------------------
def train_mlp(task: Task, config: Mapping[str, Any]) -> Curve:
    """Train the PyTorch MLP of the ``mlp`` family for 30 epochs; score after each epoch.

    Features are standardized with a scaler fit on the train split. ``depth`` blocks of
    Linear -> ReLU -> Dropout of ``width`` units, a linear output, cross-entropy, AdamW,
    shuffled mini-batches (the last one may be smaller), one thread, ``manual_seed(0)``.

    Args:
        task: The preprocessed task.
        config: ``lr``, ``weight_decay``, ``width``, ``depth``, ``dropout``, ``batch_size``.
    """
    import torch
    from sklearn.preprocessing import StandardScaler

    torch.set_num_threads(1)
    torch.manual_seed(0)
    scaler = StandardScaler().fit(task.X_train)
    x_train, x_valid, x_test = (
        torch.as_tensor(scaler.transform(x), dtype=torch.float32)
        for x in (task.X_train, task.X_valid, task.X_test)
    )
    y_train = torch.as_tensor(task.y_train, dtype=torch.long)
    model = _mlp(
        task.n_features, task.n_classes, int(config["width"]), int(config["depth"]), float(config["dropout"])
    )
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=float(config["lr"]), weight_decay=float(config["weight_decay"])
    )
    val: list[float] = []
    test: list[float] = []
    fit_seconds = 0.0
    for _ in range(MLP_EPOCHS):
        start = time.process_time()
        _train_epoch(model, optimizer, x_train, y_train, int(config["batch_size"]))
        fit_seconds += time.process_time() - start
        val.append(_accuracy(model, x_valid, task.y_valid))
        test.append(_accuracy(model, x_test, task.y_test))
    return Curve(tuple(range(1, MLP_EPOCHS + 1)), tuple(val), tuple(test), fit_seconds)


def _mlp(n_inputs: int, n_classes: int, width: int, depth: int, dropout: float) -> torch.nn.Module:
    from torch import nn

    layers: list[nn.Module] = []
    size = n_inputs
    for _ in range(depth):
        layers += [nn.Linear(size, width), nn.ReLU(), nn.Dropout(dropout)]
        size = width
    layers.append(nn.Linear(size, n_classes))
    return nn.Sequential(*layers)


def _train_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
) -> None:
    import torch
    from torch.nn import functional

    model.train()
    order = torch.randperm(len(x))
    for begin in range(0, len(x), batch_size):
        batch = order[begin : begin + batch_size]
        loss = functional.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: NDArray[np.int64]) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        predicted = model(x).argmax(dim=1).numpy()
    return float(np.mean(predicted == y))


FAMILIES: dict[str, Family] = {
    "hgb": Family("hgb", tuple(range(HGB_EVERY, HGB_ITERATIONS + 1, HGB_EVERY)), train_hgb),
    "mlp": Family("mlp", tuple(range(1, MLP_EPOCHS + 1)), train_mlp),
}
