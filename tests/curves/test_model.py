"""The curve model: calibration on held-out tasks, files, versions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import autotweak
from autotweak import AutotweakError
from autotweak.curves import CurveModel, CurveModelError, CurveModelVersionError, evaluate_curve_model
from autotweak.curves._features import Reference
from tests.curves.conftest import SPACE, make_histories


def test_calibrated_on_held_out_tasks(toy_model: CurveModel) -> None:
    held_out = make_histories(4, seed=1, first=20)
    scores = evaluate_curve_model(toy_model, held_out)
    assert scores["tasks"] == 4
    assert 0.7 <= scores["coverage_80"] <= 0.92, scores
    assert 0.38 <= scores["coverage_50"] <= 0.62, scores
    assert scores["mae"] < scores["mae_no_change"], scores


def test_prediction_is_ordered(toy_model: CurveModel) -> None:
    values = np.array([0.4, 0.5, 0.55, 0.6])
    fractions = np.arange(1, 5) / 12
    unit = toy_model.unit_config({"x": 0.5, "y": 0.5})
    assert unit is not None
    ref = Reference.of(np.array([0.7, 0.8, 0.85, 0.9, 0.92]))
    peers = np.array([0.5, 0.6, 0.62, 0.7, 0.75])
    final = toy_model.final_score(values, fractions, unit, ref, peers)
    q10, q50, q90 = final.quantile((0.1, 0.5, 0.9))
    assert q10 < q50 < q90
    assert final.p_above(q10) > final.p_above(q50) > final.p_above(q90)
    assert final.p_above(q50) == pytest.approx(0.5, abs=0.02)


def test_unit_config_refuses_params_outside_the_space(toy_model: CurveModel) -> None:
    assert toy_model.unit_config({"x": 0.5}) is None
    assert toy_model.unit_config({"x": 2.0, "y": 0.5}) is None


def test_save_and_load_give_the_same_predictions(toy_model: CurveModel, toy_model_file: Path) -> None:
    loaded = CurveModel.load(toy_model_file)
    assert loaded.space.to_dict() == SPACE.to_dict()
    x = np.random.default_rng(0).uniform(-1, 1, size=(16, 13))
    mu, sigma = toy_model.location(x)
    mu2, sigma2 = loaded.location(x)
    np.testing.assert_allclose(mu, mu2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sigma, sigma2, rtol=1e-5, atol=1e-5)
    header = json.loads(toy_model_file.read_text())
    assert header["format_version"] == 1 and header["autotweak_version"] == autotweak.__version__
    assert header["space"]["name"] == "toy" and header["summary"]["trials"] == 16 * 48  # make_histories(16)
    assert loaded.summary == header["summary"] == json.loads(json.dumps(dict(toy_model.summary)))


def test_incompatible_format_version_is_refused(toy_model_file: Path, tmp_path: Path) -> None:
    raw = json.loads(toy_model_file.read_text())
    raw["format_version"] = 99
    path = tmp_path / "future.curve.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(CurveModelVersionError) as info:
        CurveModel.load(path)
    message = str(info.value)
    assert str(path) in message and "format_version=99" in message and "must be 1" in message
    assert "fit_curve_model" in message and "benchmarks" not in message  # what a user can run
    assert isinstance(info.value, AutotweakError)


@pytest.mark.parametrize(
    ("content", "rule"),
    [
        ("not json", "readable JSON"),
        ('{"kind": "other"}', "'kind' must be"),
        ('{"kind": "autotweak.curve_model", "format_version": 1}', "fields"),
    ],
)
def test_broken_files_are_refused(tmp_path: Path, content: str, rule: str) -> None:
    path = tmp_path / "broken.curve.json"
    path.write_text(content)
    with pytest.raises(CurveModelError, match=rule):
        CurveModel.load(path)


def test_too_few_tasks_is_an_error() -> None:
    from autotweak.curves import fit_curve_model

    with pytest.raises(AutotweakError, match=">= 2 tasks"):
        fit_curve_model(make_histories(1), SPACE)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"max_examples": 0}, "max_examples"),
        ({"holdout": 1.5}, "holdout"),
        ({"holdout": 0}, "holdout"),
        ({"hidden": ()}, "hidden"),
        ({"hidden": (32, 0)}, "hidden"),
        ({"seed": -1}, "seed"),
        ({"space": "hgb"}, "space"),
        ({"histories": []}, "histories"),
    ],
)
def test_fit_arguments_are_checked_before_fitting(args: dict[str, object], field: str) -> None:
    from autotweak.curves import fit_curve_model

    call: dict[str, object] = {"histories": make_histories(2, n_trials=8), "space": SPACE, **args}
    with pytest.raises(AutotweakError, match=f"'{field}' of fit_curve_model must be"):
        fit_curve_model(**call)  # type: ignore[arg-type]
