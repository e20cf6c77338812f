"""The start line names the model that serves `sampler: meta` and `pruner: learned`, or says there is none."""

from __future__ import annotations

import re

import pytest

from autotweak.cli._models import pruner_shown, sampler_shown
from autotweak.spec import Experiment
from tests.conftest import base_spec


def _experiment(tweaks, sampler="meta", pruner="learned") -> Experiment:
    spec = base_spec(base={}, tweaks=tweaks, sampler=sampler, pruner=pruner, baseline=False)
    spec["metric"] = {"name": "loss", "direction": "minimize", "steps": 10}
    return Experiment.from_dict(spec)


@pytest.mark.parametrize("space", ["hgb", "mlp"])
def test_a_space_with_shipped_models_names_them(space):
    experiment = _experiment(space)
    assert re.fullmatch(r"meta \(\d+ past tasks\)", sampler_shown(experiment))
    assert pruner_shown(experiment) == "learned (47 past tasks' curves)"


@pytest.mark.parametrize(
    "tweaks", ["cnn", "linear", "transformer_finetune", {"x": {"type": "float", "low": 0, "high": 1}}]
)
def test_a_space_without_a_model_says_what_runs_instead(tweaks):
    experiment = _experiment(tweaks)
    assert sampler_shown(experiment) == "meta (no meta-model fits the space: tpe alone)"
    assert pruner_shown(experiment) == "learned (no curve model fits the space: MedianPruner decides)"


def test_a_space_narrowed_off_its_model_or_with_a_dropped_parameter_says_so_too():
    dropped = _experiment({"extends": "hgb", "drop": ["max_features"]})
    assert sampler_shown(dropped).startswith("meta (no meta-model fits the space")
    assert pruner_shown(dropped).startswith("learned (no curve model fits the space")


def test_other_samplers_and_pruners_are_shown_by_name_and_no_model_says_so():
    assert sampler_shown(_experiment("hgb", sampler="tpe")) == "tpe"
    assert pruner_shown(_experiment("hgb", pruner="median")) == "median"
    named = _experiment("cnn", sampler={"name": "meta", "args": {"model": "none"}})
    assert sampler_shown(named) == "meta (no meta-model: tpe alone)"


def test_a_named_model_file_is_shown_with_what_it_learned_from():
    from autotweak.curves import curve_model_paths
    from autotweak.meta import model_paths

    meta_file = next(p for p in model_paths() if p.name.startswith("hgb"))
    curve_file = next(p for p in curve_model_paths() if p.name.startswith("hgb"))
    experiment = _experiment(
        "hgb",
        sampler={"name": "meta", "args": {"model": str(meta_file)}},
        pruner={"name": "learned", "args": {"model": str(curve_file)}},
    )
    assert re.fullmatch(rf"meta \({re.escape(meta_file.name)}: \d+ past tasks\)", sampler_shown(experiment))
    assert pruner_shown(experiment) == f"learned ({curve_file.name}: 47 past tasks' curves)"


def test_a_dropped_parameter_is_named_on_the_start_line():
    dropped = _experiment({"extends": "hgb", "drop": ["max_features"]})
    assert sampler_shown(dropped) == (
        "meta (no meta-model fits the space: the hgb meta-model needs max_features; tpe alone)"
    )
    assert pruner_shown(dropped) == (
        "learned (no curve model fits the space: the hgb curve model needs max_features; "
        "MedianPruner decides)"
    )


@pytest.mark.parametrize(
    ("tweaks", "said"),
    [
        (
            {"extends": "mlp", "params": {"layers": {"type": "int", "low": 1, "high": 3}}},
            "does not read layers",
        ),
        (
            {"extends": "mlp", "params": {"width": {"type": "float", "low": 16, "high": 256}}},
            "reads width as int",
        ),
    ],
)
def test_a_parameter_added_or_of_another_kind_is_named_on_the_start_line(tweaks, said):
    assert (
        sampler_shown(_experiment(tweaks))
        == f"meta (no meta-model fits the space: the mlp meta-model {said}; tpe alone)"
    )


def test_a_range_beyond_the_curve_models_is_named_on_the_start_line():
    narrowed = _experiment({"extends": "hgb", "params": {"learning_rate": {"high": 0.3}}})
    assert pruner_shown(narrowed) == "learned (47 past tasks' curves)"
    widened = _experiment({"extends": "hgb", "params": {"learning_rate": {"low": 1e-4, "high": 1.0}}})
    assert pruner_shown(widened) == (
        "learned (47 past tasks' curves; learning_rate beyond the model's [0.005, 0.5]: "
        "MedianPruner decides those trials)"
    )
    off = _experiment({"extends": "hgb", "params": {"learning_rate": {"low": 0.6, "high": 1.0}}})
    assert pruner_shown(off) == (
        "learned (no curve model fits the space: learning_rate in [0.6, 1.0] misses "
        "the model's [0.005, 0.5]; MedianPruner decides)"
    )


def test_a_range_moved_off_every_candidate_is_said_as_such_not_as_no_model_fitting():
    moved = _experiment({"extends": "hgb", "params": {"learning_rate": {"low": 0.5, "high": 1.0}}})
    assert sampler_shown(moved) == "meta (no candidate of its meta-model inside the space: tpe alone)"
