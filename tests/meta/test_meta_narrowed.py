"""A space whose ranges leave out every candidate of the shipped model that fits its parameters."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from autotweak.cli import main
from autotweak.meta import MetaModelError, MetaSampler, model_paths, resolve_meta_model
from autotweak.meta._library import narrowed_out
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


def test_suggest_says_no_candidate_lies_inside_the_space(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["suggest", str(_spec(tmp_path, NARROWED))])
    err = " ".join(capsys.readouterr().err.split())
    assert "hgb.meta.npz fits the parameters of the space of" in err
    assert f"but none of its 512 {NO_CANDIDATE}: learning_rate in [0.49, 0.5] where the candidates" in err
    assert "no candidate is inside all of these at once" in err and "narrowed" not in err
    assert "no meta-model fits" not in err


def test_a_shifted_range_is_named_with_the_candidates_range(tmp_path: Path) -> None:
    """A range moved off the candidates is not 'narrowed': the parameter and both ranges are named."""
    experiment = load_experiment(_spec(tmp_path, SHIFTED), check_objective=False)
    why = narrowed_out(experiment.space, "the space")
    assert why is not None and why.endswith(
        "hgb.meta.npz fits the parameters of the space but none of its 512 candidates lies inside it: "
        "learning_rate in [0.5, 1] where the candidates span [0.00504057, 0.495873]"
    ), why


def test_the_meta_sampler_without_its_model_says_why_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = NARROWED | {"learning_rate": {"low": 0.48, "high": 0.5}}  # a space this process has not said
    experiment = load_experiment(_spec(tmp_path, other), check_objective=False)
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        for _ in range(3):
            sampler = build_sampler(Component("meta"), experiment.space, 0)
            assert isinstance(sampler, MetaSampler) and sampler.model is None
    said = [r for r in caplog.records if NO_CANDIDATE in r.getMessage()]
    assert len(said) == 1 and said[0].name.startswith("autotweak.")
    assert "hgb.meta.npz" in said[0].getMessage() and "without a meta-model" in said[0].getMessage()


def test_the_shipped_model_named_for_a_narrowed_space_says_why_it_does_not_serve(tmp_path: Path) -> None:
    experiment = load_experiment(_spec(tmp_path, NARROWED), check_objective=False)
    (shipped,) = [p for p in model_paths() if p.name == "hgb.meta.npz"]
    expected = r"fits the parameters of the space but none of its \d+ candidates lies inside it: "
    with pytest.raises(MetaModelError, match=expected):
        resolve_meta_model(shipped, experiment.space)
