"""A space narrowed so that none of the shipped model's candidates lies inside it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from autotweak.cli import main
from autotweak.meta import MetaModelError, MetaSampler, model_paths, resolve_meta_model
from autotweak.spec import Component, load_experiment
from autotweak.spec._components import build_sampler
from tests.conftest import base_spec


def _spec(tmp_path: Path, learning_rate_low: float) -> Path:
    """A spec that ``extends: hgb`` with ranges where no shipped candidate lies."""
    narrowed = {
        "learning_rate": {"low": learning_rate_low, "high": 0.5},
        "max_leaf_nodes": {"low": 250},
        "min_samples_leaf": {"high": 1},
    }
    spec = base_spec(
        name="narrow", tweaks={"extends": "hgb", "params": narrowed}, base={}, sampler={"name": "meta"}
    )
    path = tmp_path / "narrow.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_suggest_says_no_candidate_lies_inside_the_narrowed_ranges(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["suggest", str(_spec(tmp_path, 0.49))])
    err = " ".join(capsys.readouterr().err.split())
    assert "hgb.meta.npz fits the parameters of the space of" in err
    assert "but none of its" in err and "candidates lies inside the narrowed ranges" in err
    assert "no meta-model fits" not in err


def test_the_meta_sampler_without_its_model_says_why_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    experiment = load_experiment(_spec(tmp_path, 0.48), check_objective=False)
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        for _ in range(3):
            sampler = build_sampler(Component("meta"), experiment.space, 0)
            assert isinstance(sampler, MetaSampler) and sampler.model is None
    said = [r for r in caplog.records if "candidates lies inside the narrowed ranges" in r.getMessage()]
    assert len(said) == 1 and said[0].name.startswith("autotweak.")
    assert "hgb.meta.npz" in said[0].getMessage() and "without a meta-model" in said[0].getMessage()


def test_the_shipped_model_named_for_a_narrowed_space_says_why_it_does_not_serve(tmp_path: Path) -> None:
    experiment = load_experiment(_spec(tmp_path, 0.47), check_objective=False)
    (shipped,) = [p for p in model_paths() if p.name == "hgb.meta.npz"]
    with pytest.raises(
        MetaModelError, match=r"fits the parameters of the space but none of its \d+ candidates"
    ):
        resolve_meta_model(shipped, experiment.space)
