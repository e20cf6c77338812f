"""A trial whose metric goes NaN (or to the worst infinity) is stopped at that step, whatever the pruner.

Training on after a NaN loss wastes every step that is left: the trial fails at its end anyway
(its result is not finite). With pruning on, the report that carries the NaN prunes it there,
and the trial keeps why (``autotweak.pruner.rule`` ``non-finite value``, ``.value``, ``.step``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from optuna.study import StudyDirection
from optuna.trial import TrialState

import autotweak
from autotweak.engine._diverged import diverged
from autotweak.report import build_report
from tests.conftest import base_spec, objective
from tests.helpers import load, mlflow_runs

PRUNERS = {
    "median": {"n_startup_trials": 1},
    "percentile": {"n_startup_trials": 1},
    "successive_halving": {"min_resource": 1},
    "hyperband": {"min_resource": 1},
    "learned": {},
}


def _spec(pruner: str, **overrides: Any) -> dict[str, Any]:
    """Two trials of 10 steps: trial 0 (the base config) reports finite losses, trial 1 NaN from step 2."""
    spec: dict[str, Any] = {
        "name": f"diverges-{pruner}",
        "objective": objective("diverges"),
        "base": {"x": 0.0, "steps": 10},
        "metric": {"name": "loss", "direction": "minimize", "steps": 10},
        "pruner": {"name": pruner, "args": PRUNERS.get(pruner, {})},
        "budget": {"trials": 2},
    }
    return base_spec(**(spec | overrides))


@pytest.mark.parametrize("pruner", sorted(PRUNERS))
def test_optimize_stops_a_trial_at_the_step_its_loss_went_nan(home: Path, pruner: str) -> None:
    experiment = autotweak.Experiment.from_dict(_spec(pruner, execution={"workers": 2}))
    result = autotweak.optimize(experiment)
    finite, nan = load(experiment).trials
    assert nan.state == TrialState.PRUNED and max(nan.intermediate_values) == 2  # not trained to step 10
    assert math.isnan(nan.intermediate_values[2])
    attrs = {k: v for k, v in nan.user_attrs.items() if k.startswith("autotweak.pruner.")}
    assert attrs["autotweak.pruner.rule"] == "non-finite value"
    assert attrs["autotweak.pruner.value"] == "NaN" and attrs["autotweak.pruner.step"] == 2
    assert finite.state == TrialState.COMPLETE and max(finite.intermediate_values) == 10
    assert result.summary.counts["pruned"] == 1


def test_the_mlflow_run_and_the_report_say_where_it_diverged(home: Path, mlflow_client: MlflowClient) -> None:
    experiment = autotweak.Experiment.from_dict(_spec("median"))
    autotweak.optimize(experiment)
    study = load(experiment)
    nan = study.trials[1]
    tags = mlflow_runs(mlflow_client, experiment.name).children[nan.number].data.tags
    assert (tags["autotweak.pruner.rule"], tags["autotweak.pruner.value"]) == ("non-finite value", "NaN")
    assert tags["autotweak.pruner.step"] == "2"
    text = build_report(study).to_markdown()
    assert "## Diverged trials" in text and f"trial {nan.number} (NaN at step 2)" in text


def test_without_a_pruner_the_trial_trains_on(home: Path) -> None:
    experiment = autotweak.Experiment.from_dict(_spec("none"))
    autotweak.optimize(experiment)
    nan = load(experiment).trials[1]
    assert nan.state == TrialState.FAIL and max(nan.intermediate_values) == 10


@pytest.mark.parametrize(
    ("direction", "bad", "pruned"),
    [
        ("minimize", math.nan, True),
        ("minimize", math.inf, True),
        ("maximize", -math.inf, True),
        ("maximize", math.nan, True),
        ("minimize", -math.inf, False),  # the best value there is: the pruner weighs it
        ("maximize", math.inf, False),
    ],
)
def test_an_ask_tell_loop_is_told_to_prune_at_the_diverged_step(
    home: Path, direction: str, bad: float, pruned: bool
) -> None:
    # n_startup_trials=5: the median rule itself stops nothing in a study of two trials
    spec = _spec("median", metric={"name": "loss", "direction": direction, "steps": 10})
    spec["pruner"] = {"name": "median", "args": {"n_startup_trials": 5}}
    stopped: dict[int, int] = {}
    with autotweak.Study(spec, track=False) as study:
        while (trial := study.ask()) is not None:
            for step in range(1, 11):
                trial.report(bad if trial.number == 1 and step >= 2 else 1.0 / step, step)
                if trial.should_prune():
                    stopped[trial.number] = step
                    study.tell(trial, state="pruned")
                    break
            else:
                study.tell(trial, 0.5)
        reasons = [t.user_attrs.get("autotweak.pruner.value") for t in study.optuna_study.trials]
    assert stopped == ({1: 2} if pruned else {})
    assert sorted(r for r in reasons if r is not None) == (
        ["-inf" if bad < 0 else "+inf" if bad > 0 else "NaN"] if pruned else []
    )


def test_a_nan_at_the_last_step_stops_nothing_the_trial_trained_in_full(home: Path) -> None:
    """At step ``metric.steps`` nothing is left to save: the trial is told its value (and fails on NaN)."""
    spec = _spec("median", metric={"name": "loss", "direction": "minimize", "steps": 2})
    with autotweak.Study(spec, track=False) as study:
        while (trial := study.ask()) is not None:
            for step in (1, 2):
                trial.report(math.nan if trial.number == 1 and step == 2 else 1.0, step)
                assert not trial.should_prune()
            study.tell(trial, trial.steps[-1][1])
        states = [t.state for t in study.optuna_study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL]


def test_which_values_read_as_diverged() -> None:
    assert diverged(math.nan, StudyDirection.MINIMIZE) == "NaN"
    assert diverged(math.inf, StudyDirection.MINIMIZE) == "+inf"
    assert diverged(-math.inf, StudyDirection.MAXIMIZE) == "-inf"
    assert diverged(-math.inf, StudyDirection.MINIMIZE) is None
    assert diverged(1e308, StudyDirection.MINIMIZE) is None
