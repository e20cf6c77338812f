"""A trial the learned pruner stops keeps, in its MLflow run, why it was stopped."""

from __future__ import annotations

from pathlib import Path

import autotweak
from tests.curves.conftest import N_STEPS, toy_curve
from tests.helpers import load, mlflow_runs


def test_pruned_run_records_prediction_and_probability(
    home: Path, make_experiment, mlflow_client, toy_model_file: Path
) -> None:
    exp = make_experiment(
        name="learned",
        tweaks={
            "x": {"type": "float", "low": 0.0, "high": 1.0},
            "y": {"type": "float", "low": 0.0, "high": 1.0},
        },
        base={},
        budget={"trials": 10},  # 3 of them pruned (seed 0), each one checked below
        sampler={"name": "random"},
        pruner={"name": "learned", "args": {"model": str(toy_model_file), "threshold": 0.3}},
        metric={"name": "acc", "direction": "maximize", "steps": N_STEPS},
    )
    with autotweak.Study(exp) as study:
        while (trial := study.ask()) is not None:
            curve = toy_curve(trial.params, task=3)
            for step, value in enumerate(curve, start=1):
                trial.report(value, step)
                if trial.should_prune():
                    study.tell(trial, state="pruned")
                    break
            else:
                study.tell(trial, curve[-1])
    pruned = [t for t in load(exp).trials if t.state.name == "PRUNED"]
    assert pruned, "nothing was pruned: the test proves little"
    runs = mlflow_runs(mlflow_client, "learned")
    for trial in pruned:
        run = runs.children[trial.number]
        tags = run.data.tags
        assert tags["autotweak.state"] == "pruned"
        assert tags["autotweak.pruner.rule"] == "learned"
        assert float(tags["autotweak.pruner.p_top_k"]) < 0.3
        assert (
            float(tags["autotweak.pruner.predicted_final"])
            == trial.user_attrs["autotweak.pruner.predicted_final"]
        )
        history = mlflow_client.get_metric_history(run.info.run_id, "acc")
        assert [m.step for m in history] == list(range(1, trial.last_step + 1))  # the partial curve is kept
