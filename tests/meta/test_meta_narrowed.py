"""A space whose ranges leave out every candidate of the shipped model that fits its parameters."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from autotweak.cli import main
from autotweak.meta import MetaModelError, MetaSampler, model_paths, resolve_meta_model
from autotweak.meta._records import NO_MODEL_ATTR
from autotweak.spec import Component, load_experiment
from autotweak.spec._components import build_sampler
from tests.conftest import base_spec

NO_CANDIDATE = "candidates lies inside it"
NARROWED = {
    "learning_rate": {"low": 0.49, "high": 0.5},
    "max_leaf_nodes": {"low": 250},
    "min_samples_leaf": {"high": 1},
}
SHIFTED = {"learning_rate": {"low": 0.5, "high": 1.0}}  # above the candidates, not narrowed


def _spec(tmp_path: Path, params: dict[str, Any], **overrides: Any) -> Path:
    """A spec that ``extends: hgb`` with ``params`` where no shipped candidate lies."""
    spec = base_spec(
        name="narrow", tweaks={"extends": "hgb", "params": params}, base={}, sampler={"name": "meta"}
    )
    path = tmp_path / "narrow.yaml"
    path.write_text(yaml.safe_dump(spec | overrides))
    return path


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if NO_CANDIDATE in r.getMessage()]


def test_suggest_says_no_candidate_lies_inside_the_space(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["suggest", str(_spec(tmp_path, NARROWED))])
    err = " ".join(capsys.readouterr().err.split())
    assert "hgb.meta.npz fits the parameters of the space of" in err
    assert f"but none of its 512 {NO_CANDIDATE}: learning_rate in [0.49, 0.5] where the candidates" in err
    assert "no candidate is inside all of these at once" in err and "narrowed" not in err
    assert err.count(NO_CANDIDATE) == 1, "said as the error, not also as a warning"
    assert "no meta-model fits" not in err


def test_a_shifted_range_is_named_with_the_candidates_range(tmp_path: Path) -> None:
    """A range moved off the candidates is not 'narrowed': the parameter and both ranges are named."""
    experiment = load_experiment(_spec(tmp_path, SHIFTED), check_objective=False)
    sampler = build_sampler(Component("meta"), experiment.space, 0)
    assert isinstance(sampler, MetaSampler) and sampler.model is None
    assert sampler.why_no_model is not None
    assert sampler.why_no_model.endswith(
        "hgb.meta.npz fits the parameters of the space but none of its 512 candidates lies inside it: "
        "learning_rate in [0.5, 1] where the candidates span [0.00504057, 0.495873]"
    ), sampler.why_no_model


def test_the_meta_sampler_without_its_model_says_why_once_per_study(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each worker builds its own sampler on the shared study; the first to ask a trial says it."""
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        experiment = load_experiment(_spec(tmp_path, SHIFTED), check_objective=False)  # the dry run
        assert not _said(caplog), "the spec check's dry run leaves the note to the study"
        storage = optuna.storages.InMemoryStorage()
        for worker in range(3):
            sampler = build_sampler(Component("meta"), experiment.space, worker)
            study = optuna.create_study(study_name="s", storage=storage, load_if_exists=True, sampler=sampler)
            study.optimize(lambda t: experiment.space.suggest(t)["learning_rate"], n_trials=2)
    (said,) = [r for r in caplog.records if NO_CANDIDATE in r.getMessage()]
    assert said.name.startswith("autotweak.")
    assert said.getMessage().startswith("meta-learner: the meta-model ") and said.getMessage().endswith(
        "; TPESampler samples every trial instead (the meta sampler runs cold, without a meta-model)"
    )
    assert NO_MODEL_ATTR in storage.get_study_system_attrs(study._study_id)


def test_the_shipped_model_named_for_a_narrowed_space_says_why_it_does_not_serve(tmp_path: Path) -> None:
    experiment = load_experiment(_spec(tmp_path, NARROWED), check_objective=False)
    (shipped,) = [p for p in model_paths() if p.name == "hgb.meta.npz"]
    expected = r"fits the parameters of the space but none of its \d+ candidates lies inside it: "
    with pytest.raises(MetaModelError, match=expected):
        resolve_meta_model(shipped, experiment.space)


def test_optimize_with_two_workers_says_it_once(home: Path) -> None:
    """Said by one worker: not by the spec check in the parent, nor by each worker process.

    Run as a command of its own: in this process, a stream an earlier test's command left
    its handlers on would take the workers' lines, and what this process said once
    already (an earlier test's warning) would not be said again.
    """
    from tests.cli.test_cli import autotweak

    objective = home.parent / "shifted.py"
    objective.write_text("def f(config):\n    return config['learning_rate']\n")
    execution = {"workers": 2, "heartbeat_interval": 1, "grace_period": 3}
    spec = _spec(home.parent, SHIFTED, objective=f"{objective}:f", budget={"trials": 4}, execution=execution)
    run = autotweak("optimize", spec.name, cwd=home.parent)
    assert run.returncode == 0, run.stderr
    assert run.stderr.count(NO_CANDIDATE) == 1, run.stderr
    assert "] WARNING meta-learner: the meta-model " in run.stderr, run.stderr
    assert "learning_rate in [0.5, 1] where the candidates span [" in run.stderr, run.stderr
    assert "narrowed" not in run.stderr, run.stderr


def test_resolve_meta_model_says_why_it_returns_none_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A Python user building ``MetaSampler(resolve_meta_model("auto", space))`` is told, once."""
    space = load_experiment(
        _spec(tmp_path, {"learning_rate": {"low": 0.6, "high": 0.9}}), check_objective=False
    ).space
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        assert resolve_meta_model("auto", space) is None
        assert resolve_meta_model("auto", space) is None
    (said,) = _said(caplog)
    assert "learning_rate in [0.6, 0.9] where the candidates span [0.00504057, 0.495873]" in said
    assert said.endswith("none is returned (a MetaSampler given no model runs its base sampler alone)")
