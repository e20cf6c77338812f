"""The conformance suite every executor passes.

Use it by subclassing and providing an ``executor`` fixture that returns a fresh
executor::

    class TestMyExecutor(ExecutorConformance):
        @pytest.fixture
        def executor(self):
            return MyExecutor()
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from autotweak.engine import BaseExecutor, optimize
from autotweak.spec import Experiment

__all__ = ["ExecutorConformance", "make_conformance_experiment"]

_OBJECTIVES = "autotweak.testing._objectives"


def make_conformance_experiment(tmp: Path, name: str, objective: str, trials: int) -> Experiment:
    """A small experiment on stores under ``tmp``."""
    return Experiment.from_dict(
        {
            "name": name,
            "objective": f"{_OBJECTIVES}:{objective}",
            "tweaks": {"x": {"type": "float", "low": -2.0, "high": 2.0}},
            "metric": {"name": "loss", "direction": "minimize", "steps": 3},
            "budget": {"trials": trials},
            "sampler": "random",
            "pruner": "none",
            "execution": {"heartbeat_interval": 1, "grace_period": 5},
            "storage": f"sqlite:///{tmp / 'optuna.db'}",
            "tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}",
        }
    )


class ExecutorConformance:
    """What every executor must do: spend the budget exactly, record failures, resume."""

    @pytest.fixture
    def executor(self) -> BaseExecutor:
        raise NotImplementedError("provide an 'executor' fixture")

    def _study(self, exp: Experiment) -> optuna.Study:
        assert exp.storage is not None
        return optuna.load_study(study_name=exp.name, storage=exp.storage)

    def test_runs_exactly_the_trial_budget(self, executor: BaseExecutor, tmp_path: Path) -> None:
        exp = make_conformance_experiment(tmp_path, "budget", "quadratic", 5)
        result = optimize(exp, executor=executor)
        trials = self._study(exp).trials
        assert [t.number for t in trials] == [0, 1, 2, 3, 4]
        assert all(t.state == TrialState.COMPLETE for t in trials)
        assert result.summary.counts["complete"] == 5

    def test_failures_are_recorded_and_the_study_goes_on(
        self, executor: BaseExecutor, tmp_path: Path
    ) -> None:
        exp = make_conformance_experiment(tmp_path, "failing", "failing", 6)
        result = optimize(exp, executor=executor)
        trials = self._study(exp).trials
        assert len(trials) == 6
        failed = [t for t in trials if t.state == TrialState.FAIL]
        assert failed == [t for t in trials if t.params["x"] > 0]
        assert result.summary.counts["failed"] == len(failed)

    def test_resume_adds_to_the_same_study(self, executor: BaseExecutor, tmp_path: Path) -> None:
        exp = make_conformance_experiment(tmp_path, "resume", "quadratic", 2)
        optimize(exp, executor=executor)
        more = make_conformance_experiment(tmp_path, "resume", "quadratic", 4)
        optimize(more, executor=executor, resume=True)
        assert [t.number for t in self._study(exp).trials] == [0, 1, 2, 3]
