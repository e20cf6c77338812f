"""Meta-model files: damage is named with the array and the file, digests survive save and load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autotweak.meta import (
    Histories,
    MetaModel,
    MetaModelError,
    PastTrial,
    TaskHistory,
    fit_meta_model,
    load_meta_model,
)
from autotweak.space import SearchSpace

SPACE = SearchSpace.from_dict(
    {
        "x": {"type": "float", "low": 0.0, "high": 1.0},
        "y": {"type": "float", "low": 1e-3, "high": 1.0, "log": True},
    }
)


@pytest.fixture(scope="module")
def model() -> MetaModel:
    rng = np.random.default_rng(0)
    tasks = []
    for name in ("a", "b", "c"):
        points = rng.random((12, 2))
        trials = tuple(
            PastTrial({"x": float(x), "y": float(10 ** (-3 * (1 - y)))}, value=float(-abs(x - 0.3) - y))
            for x, y in points
        )
        tasks.append(TaskHistory(name, "maximize", trials))
    return fit_meta_model(Histories(tuple(tasks)), SPACE, n_design=32)


def _rewrite(source: Path, target: Path, **arrays: Any) -> Path:
    with np.load(source) as data:
        stored = {k: data[k] for k in data.files}
    np.savez_compressed(target, **(stored | arrays))
    return target


def test_the_digest_of_a_model_and_of_its_saved_copy_agree(model: MetaModel, tmp_path: Path) -> None:
    loaded = load_meta_model(model.save(tmp_path / "m.meta.npz"))
    assert loaded.digest == model.digest
    assert load_meta_model(loaded.save(tmp_path / "again.meta.npz")).digest == model.digest


def test_scores_cut_short_are_blamed_on_scores(model: MetaModel, tmp_path: Path) -> None:
    path = model.save(tmp_path / "m.meta.npz")
    with np.load(path) as data:
        scores = data["scores"]
    damaged = _rewrite(path, tmp_path / "short.meta.npz", scores=scores[:, :5])
    with pytest.raises(MetaModelError) as info:
        load_meta_model(damaged)
    n = len(model.units)
    assert str(info.value).startswith(
        f"{damaged}: 'scores' must have one column per candidate ({n} rows of 'units'), got shape (3, 5)"
    )


def test_nan_scores_are_refused_naming_the_file(model: MetaModel, tmp_path: Path) -> None:
    path = model.save(tmp_path / "m.meta.npz")
    with np.load(path) as data:
        scores = data["scores"].copy()
    scores[1, 2] = np.nan
    damaged = _rewrite(path, tmp_path / "nan.meta.npz", scores=scores)
    with pytest.raises(MetaModelError) as info:
        load_meta_model(damaged)
    assert str(info.value).startswith(f"{damaged}: 'scores' must hold numbers in [0, 1], got nan at [1, 2]")
    assert "the file is damaged" in str(info.value)


def test_a_model_with_scores_out_of_range_is_refused(model: MetaModel) -> None:
    with pytest.raises(MetaModelError, match=r"'scores' must hold numbers in \[0, 1\], got 1.5 at \[0, 0\]"):
        MetaModel(SPACE, ("a",), ({},), np.array([[0.5, 0.5]]), np.array([[1.5]]), np.array([3]))
    with pytest.raises(
        MetaModelError, match=r"'units' must hold one column per tunable parameter of the space \(2\)"
    ):
        MetaModel(SPACE, ("a",), ({},), np.array([[0.5]]), np.array([[1.0]]), np.array([3]))


def test_a_curve_model_file_is_said_not_to_be_a_meta_model(tmp_path: Path) -> None:
    path = tmp_path / "hgb.curve.json"
    path.write_text(json.dumps({"kind": "autotweak.curve_model", "format_version": 1, "space": {}}))
    with pytest.raises(MetaModelError) as info:
        load_meta_model(path)
    message = str(info.value)
    assert "got a file that is not an .npz archive (it looks like a curve model" in message
    assert "pickled" not in message
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(MetaModelError, match=r"not an .npz archive \(it starts with b'hello'\)"):
        load_meta_model(other)
