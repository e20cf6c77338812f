"""Pieces several meta-learner test modules share."""

from __future__ import annotations

import optuna

from autotweak import SearchSpace

TOY_SPACE = SearchSpace.from_dict(
    {
        "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
        "depth": {"type": "int", "low": 1, "high": 8},
        "act": {"type": "categorical", "choices": ["relu", "tanh"]},
    },
    name="toy",
)


class SeeingSampler(optuna.samplers.RandomSampler):
    """A random sampler that records, for each trial it samples, the trials it could see."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.seen: dict[int, set[int]] = {}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        param_name: str,
        param_distribution: optuna.distributions.BaseDistribution,
    ) -> object:
        self.seen[trial.number] = {t.number for t in study._get_trials(deepcopy=False)}
        return super().sample_independent(study, trial, param_name, param_distribution)
