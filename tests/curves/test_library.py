"""Curve model files on ``$AUTOTWEAK_META_PATH``: damaged ones refused, skipped once, not at every report."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest

from autotweak.curves import CurveModel, CurveModelError, LearnedCurvePruner, load_curve_model
from autotweak.curves._library import model_for
from tests.curves.conftest import N_STEPS, objective_for


def _edited(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        raw = json.loads(path.read_text())
        change(raw)
        path.write_text(json.dumps(raw))

    return edit


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "empty": (lambda p: p.write_text(""), r"must be a readable JSON file, got an empty file"),
    "truncated": (
        lambda p: p.write_text(p.read_text()[:2000]),
        r"must be a readable JSON file, got Expecting",
    ),
    "binary": (
        lambda p: p.write_bytes(b"\xff\xfe" * 100),
        r"must be a readable JSON file, got 'utf-8' codec",
    ),
    "no-layers": (
        _edited(lambda raw: raw["mean_net"].update(weights=[], biases=[])),
        r"'mean_net' must map 13 inputs .* to 1 output, got 0 weight matrices and 0 bias vectors",
    ),
    "a-layer-cut": (
        _edited(lambda raw: raw["scale_net"]["weights"].__setitem__(0, [[0.0, 1.0]])),
        r"'scale_net' must map 13 inputs .* got layer 0 of shape \(1, 2\)",
    ),
    "inputs": (
        _edited(lambda raw: raw["mean_net"].update(mean=[0.0])),
        r"'mean_net' must map 13 inputs .* got input means and scales of shapes \(1,\) and \(13,\)",
    ),
    "residual": (
        _edited(lambda raw: raw["residual"].update(levels=[0.5])),
        r"'residual' must hold as many quantiles as levels \(>= 2\)",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_file_is_refused_naming_it_and_what_is_wrong(
    toy_model: CurveModel, tmp_path: Path, damage: str
) -> None:
    path = toy_model.save(tmp_path / f"{damage}.curve.json")
    harm, what = DAMAGE[damage]
    harm(path)
    with pytest.raises(CurveModelError, match=rf"^{tmp_path}/{damage}\.curve\.json: .*{what}"):
        CurveModel.load(path)


@pytest.fixture
def stale_first(toy_model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A meta path with a model of another format version, searched before a good one."""
    stale = tmp_path / "stale"
    stale.mkdir()
    raw = json.loads(toy_model_file.read_text()) | {"format_version": 7}
    (stale / "a.curve.json").write_text(json.dumps(raw))
    monkeypatch.setenv("AUTOTWEAK_META_PATH", f"{stale}:{toy_model_file.parent}")
    return stale / "a.curve.json"


def _skips(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]


def test_a_stale_model_is_said_to_be_skipped_once_per_process(
    stale_first: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="autotweak")
    params = {"x": 0.5, "y": 0.5}
    for _ in range(5):  # the pruner asks at every report
        found = model_for(params)
        assert found is not None and found.space.name == "toy"
    skips = _skips(caplog)
    assert len(skips) == 1 and f"curve model {stale_first} skipped" in skips[0]
    assert "'format_version' must be 1" in skips[0]
    with pytest.raises(CurveModelError, match="format_version"):
        load_curve_model(stale_first)  # named, it is an error every time


def test_a_study_with_a_stale_model_on_the_path_warns_once(
    stale_first: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="autotweak")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", pruner=LearnedCurvePruner("auto", n_steps=N_STEPS))
    study.optimize(objective_for(), n_trials=8)
    assert sum(len(t.intermediate_values) for t in study.trials) > 8  # many decisions were made
    assert len(_skips(caplog)) == 1


def test_a_repaired_model_is_read_again(stale_first: Path, toy_model_file: Path) -> None:
    params = {"x": 0.5, "y": 0.5}
    assert model_for(params, None) is not None
    stale_first.write_text(toy_model_file.read_text().replace('"name":"toy"', '"name":"repaired"'))
    found = model_for(params)
    assert found is not None and found.space.name == "repaired"
