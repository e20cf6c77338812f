"""Synthetic learning curves: tasks whose curves rise to a config-dependent final score."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autotweak.curves import CurveModel, fit_curve_model
from autotweak.meta import Histories, PastTrial, TaskHistory
from autotweak.space import SearchSpace

N_STEPS = 12
SPACE = SearchSpace.from_dict(
    {"x": {"type": "float", "low": 0.0, "high": 1.0}, "y": {"type": "float", "low": 0.0, "high": 1.0}},
    name="toy",
)


def toy_curve(params: dict[str, Any], task: int = 0, n_steps: int = N_STEPS) -> list[float]:
    """A curve rising from 0.3 to a final score that peaks at a task-dependent point, plus noise."""
    x, y = float(params["x"]), float(params["y"])
    centre = 0.3 + 0.4 * ((task * 0.37) % 1.0)
    final = 0.95 - 0.6 * (x - centre) ** 2 - 0.2 * (y - 0.5) ** 2
    rate = 1.0 + 4.0 * y
    noise = np.random.default_rng([int(x * 1e9), int(y * 1e9), task]).normal(0, 0.004, n_steps)
    steps = np.arange(1, n_steps + 1) / n_steps
    return [float(v) for v in final - (final - 0.3) * np.exp(-rate * steps * 3) + noise]


def make_histories(n_tasks: int, n_trials: int = 48, seed: int = 0, first: int = 0) -> Histories:
    rng = np.random.default_rng(seed)
    tasks = []
    for task in range(first, first + n_tasks):
        trials = []
        for i in range(n_trials):
            params = {"x": float(rng.uniform()), "y": float(rng.uniform())}
            curve = toy_curve(params, task)
            steps = tuple(range(1, N_STEPS + 1))
            trials.append(PastTrial(params, curve[-1], steps, tuple(curve), f"toy:{task}#{i}"))
        tasks.append(TaskHistory(f"toy{task}", "maximize", tuple(trials)))
    return Histories(tuple(tasks))


@pytest.fixture(scope="session")
def toy_model() -> CurveModel:
    return fit_curve_model(make_histories(16), SPACE, hidden=(16, 16), max_examples=8000)


@pytest.fixture(scope="session")
def toy_model_file(toy_model: CurveModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return toy_model.save(tmp_path_factory.mktemp("curves") / "toy.curve.json")


def objective_for(pruner_task: int = 3) -> Any:
    """An Optuna objective that reports a toy curve step by step."""
    import optuna

    def objective(trial: optuna.Trial) -> float:
        params = {"x": trial.suggest_float("x", 0.0, 1.0), "y": trial.suggest_float("y", 0.0, 1.0)}
        curve = toy_curve(params, pruner_task)
        for step, value in enumerate(curve, start=1):
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return curve[-1]

    return objective
