"""A conditional tweak whose condition a trial does not meet is in none of its records.

With the ``cnn`` space, ``momentum`` is searched only with ``optimizer: sgd``: a trial on
adamw has no momentum in its config, its Optuna params, its MLflow params, the study's best
config, the report or the ablation path, even where the base config sets one.
"""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from mlflow import MlflowClient

import autotweak
from autotweak._locations import resolve_storage_url
from autotweak.engine._summary import best_config, summarize
from autotweak.report import build_report
from autotweak.report._ablation import run_ablation
from autotweak.spec import Experiment
from tests.conftest import base_spec, objective
from tests.helpers import load, mlflow_runs

CNN_BASE = {
    "lr": 0.01,
    "weight_decay": 1.0e-4,
    "channels": 16,
    "conv_layers": 1,
    "kernel_size": 3,
    "dropout": 0.1,
    "batch_size": 64,
    "momentum": 0.9,
    "epochs": 2,
}
SEEN: dict[int, dict[str, Any]] = {}


def _prefers(optimizer: str) -> Any:
    """An objective (minimize) that scores ``optimizer`` better, and keeps each config it got."""

    def objective(config: dict[str, Any], trial: autotweak.Trial) -> float:
        SEEN[trial.number] = config
        return (0.0 if config["optimizer"] == optimizer else 1.0) + config["lr"]

    return objective


def _run(base_optimizer: str, best_optimizer: str, **spec: Any) -> Experiment:
    SEEN.clear()
    experiment = Experiment.from_dict(
        base_spec(
            name="cond",
            objective=_prefers(best_optimizer),
            base={**CNN_BASE, "optimizer": base_optimizer},
            tweaks="cnn",
            metric={"name": "loss", "direction": "minimize"},
            budget={"trials": 6},
            **spec,
        )
    )
    result = autotweak.optimize(experiment)
    assert result.summary.counts["complete"] == 6
    return experiment


@pytest.mark.parametrize(
    ("base_optimizer", "best_optimizer", "baseline"),
    [("sgd", "adamw", True), ("adamw", "sgd", True), ("adamw", "sgd", False)],
)
def test_an_inactive_conditional_tweak_is_in_no_record(
    home, mlflow_client: MlflowClient, base_optimizer: str, best_optimizer: str, baseline: bool
) -> None:
    experiment = _run(base_optimizer, best_optimizer, baseline=baseline)
    study = load(experiment)
    runs = mlflow_runs(mlflow_client, "cond").children
    assert {t.params["optimizer"] for t in study.trials} == {"adamw", "sgd"}, "the seed tries both"
    for trial in study.trials:
        sgd = trial.params["optimizer"] == "sgd"
        params = runs[trial.number].data.params
        assert ("momentum" in trial.params) == sgd
        assert ("momentum" in SEEN[trial.number]) == sgd, SEEN[trial.number]
        assert ("momentum" in params) == sgd, params
        assert SEEN[trial.number]["epochs"] == 2 and params["epochs"] == "2", "the rest of the base stays"
        if sgd:
            assert float(params["momentum"]) == SEEN[trial.number]["momentum"] == trial.params["momentum"]
    if baseline:
        assert SEEN[0]["optimizer"] == base_optimizer
        assert SEEN[0].get("momentum") == (0.9 if base_optimizer == "sgd" else None)
    best = best_config(study, summarize(study))
    assert best["optimizer"] == best_optimizer and ("momentum" in best) == (best_optimizer == "sgd")
    _check_report(study, base_optimizer)


def _check_report(study: optuna.Study, base_optimizer: str) -> None:
    """The report's tweaks and ablation path: momentum comes and goes with sgd.

    Under adamw the base's momentum 0.9 is not the base config's: its trial runs without it.
    """
    report = build_report(study)
    best = study.best_trial.params
    assert report.ablation is not None
    rows = {row[0]: row[1] for row in report.ablation.section("loss").rows}
    if base_optimizer == "sgd":
        assert report.changed["momentum"] == (0.9, "—")
        assert report.ablation.configs[0]["momentum"] == 0.9
        assert "momentum" not in report.ablation.configs[-1]
        assert rows["optimizer"] == "sgd → adamw (without momentum)"
    else:
        assert report.changed["momentum"] == ("—", best["momentum"])
        assert "momentum" not in report.ablation.configs[0]
        assert rows["optimizer"] == f"adamw → sgd (with momentum {best['momentum']:.4g})"


@pytest.mark.parametrize("optimizer", ["sgd", {"type": "fixed", "value": "sgd"}], ids=["bare", "fixed"])
def test_a_conditional_tweak_under_a_fixed_parent_is_in_every_record(
    home, mlflow_client: MlflowClient, optimizer: Any
) -> None:
    """``extends: cnn`` with the optimizer fixed to sgd: momentum is searched, and in every record.

    No trial's Optuna params hold the fixed optimizer; the report once read momentum's
    condition on those alone and failed on its ablation path (KeyError: 'momentum').
    """
    experiment = Experiment.from_dict(
        base_spec(
            name="fixed_sgd",
            objective=objective("sgd_momentum"),
            base=CNN_BASE,
            tweaks={"extends": "cnn", "params": {"optimizer": optimizer}},
            metric={"name": "loss", "direction": "minimize"},
            budget={"trials": 5},
        )
    )
    result = autotweak.optimize(experiment)
    assert result.summary.counts["complete"] == 5, "the objective fails a config without momentum"
    study = load(experiment)
    runs = mlflow_runs(mlflow_client, "fixed_sgd").children
    for trial in study.trials:
        params = runs[trial.number].data.params
        assert "optimizer" not in trial.params and "momentum" in trial.params
        assert params["optimizer"] == "sgd" and float(params["momentum"]) == trial.params["momentum"]
    best = best_config(study, summarize(study))
    assert best["optimizer"] == "sgd" and best["momentum"] == study.best_trial.params["momentum"]

    report = build_report(study)
    assert report.changed["momentum"] == (0.9, study.best_trial.params["momentum"])
    assert report.ablation is not None
    assert all("momentum" in config for config in report.ablation.configs), report.ablation.configs
    assert report.ablation.configs[-1] == study.best_trial.params

    ran = run_ablation(load(experiment), 2, storage=resolve_storage_url(None), tracking_uri=None)
    after = build_report(load(experiment)).ablation
    assert ran == 2 and after is not None
    assert after.off_path == [], "each ablation trial is a config of the path"
    ablated = [t for t in load(experiment).trials if t.user_attrs.get("autotweak.ablation")]
    assert [t.state.name for t in ablated] == ["COMPLETE", "COMPLETE"]
