"""Which scores of a meta-model a past task measured and which its surrogate predicted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autotweak import SearchSpace
from autotweak.meta import MetaModel, MetaModelError, fit_meta_model, load_meta_model, read_table
from autotweak.meta._library import restrict

SPACE = SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0}}, name="line")
RAN = {"a": [0.05, 0.15, 0.25, 0.35, 0.45, 0.55], "b": [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]}


def sparse_table() -> pd.DataFrame:
    """Two past tasks of the long format that ran different configs (one shared: none)."""
    rows = [
        {"task": task, "trial": i, "value": -abs(x - 0.42), "param.x": x}
        for task, xs in RAN.items()
        for i, x in enumerate(xs)
    ]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def model() -> MetaModel:
    return fit_meta_model(read_table(sparse_table(), space=SPACE), SPACE, n_design=8)


def _column(model: MetaModel, x: float) -> int:
    return int(np.flatnonzero(np.isclose(model.units[:, 0], x))[0])


def test_a_sparse_fit_marks_the_cells_each_task_ran_measured_and_the_rest_predicted(model: MetaModel) -> None:
    assert model.measured is not None and model.measured.shape == model.scores.shape
    for row, (task, xs) in enumerate(RAN.items()):
        assert model.tasks[row] == task
        ran = sorted(_column(model, x) for x in xs)
        assert np.flatnonzero(model.measured[row]).tolist() == ran
        ranks = np.argsort(np.argsort([-abs(x - 0.42) for x in xs])) / (len(xs) - 1)
        assert model.scores[row, [_column(model, x) for x in xs]] == pytest.approx(ranks)
    other = _column(model, RAN["b"][0])
    assert model.was_measured(0, other) is False and model.was_measured(1, other) is True
    assert len(model.units) == 12 + 8  # the 12 configs run, and the 8 of the design, predicted for both
    assert model.measured.sum() == 12


def test_the_mask_survives_a_round_trip_and_stays_out_of_the_digest(model: MetaModel, tmp_path: Path) -> None:
    loaded = load_meta_model(model.save(tmp_path / "m.meta.npz"))
    assert loaded.measured is not None and loaded.measured.dtype == np.bool_
    assert np.array_equal(loaded.measured, model.measured)  # type: ignore[arg-type]
    assert loaded.digest == model.digest == without_mask(model).digest


def without_mask(model: MetaModel) -> MetaModel:
    return MetaModel(model.space, model.tasks, model.descriptors, model.units, model.scores, model.n_trials)


def _stored(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


def test_a_file_without_the_mask_loads_as_unknown(model: MetaModel, tmp_path: Path) -> None:
    path = model.save(tmp_path / "m.meta.npz")
    old = tmp_path / "old.meta.npz"
    np.savez_compressed(old, **{k: v for k, v in _stored(path).items() if k != "measured"})  # type: ignore[arg-type]
    loaded = load_meta_model(old)
    assert loaded.measured is None and loaded.was_measured(0, 0) is None
    assert "measured" not in _stored(loaded.save(tmp_path / "again.meta.npz"))  # unknown stays unknown


DAMAGED_MASKS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], str]] = {
    "cut short": (
        lambda mask: mask[:, :3],
        r"'measured' must be booleans of the shape of 'scores' \(2, \d+\), got shape \(2, 3\) of bool",
    ),
    "integers": (
        lambda mask: mask.astype(np.int64),
        r"array 'measured' must be 2-D booleans, got shape \(2, \d+\) of int64",
    ),
    "one row": (lambda mask: mask[0], r"array 'measured' must be 2-D booleans, got shape \(\d+,\) of bool"),
}


@pytest.mark.parametrize("damage", list(DAMAGED_MASKS))
def test_a_malformed_mask_is_refused_naming_the_field_and_the_rule(
    model: MetaModel, tmp_path: Path, damage: str
) -> None:
    change, message = DAMAGED_MASKS[damage]
    content = _stored(model.save(tmp_path / "m.meta.npz"))
    content["measured"] = change(content["measured"])
    path = tmp_path / "bad.meta.npz"
    np.savez_compressed(path, **content)  # type: ignore[arg-type]
    with pytest.raises(MetaModelError, match=message) as info:
        load_meta_model(path)
    assert str(info.value).startswith(f"{path}: ") and "the file is damaged" in str(info.value)


def test_a_mask_of_another_shape_is_refused_when_built() -> None:
    with pytest.raises(
        MetaModelError, match=r"'measured' must be booleans of the shape of 'scores' \(1, 2\)"
    ):
        MetaModel(
            SPACE,
            ("a",),
            ({},),
            np.array([[0.0], [1.0]]),
            np.array([[0.2, 0.9]]),
            np.array([2]),
            measured=np.array([[1, 0]]),
        )


def test_a_narrowed_space_keeps_the_mask_of_the_candidates_inside(model: MetaModel) -> None:
    narrow = SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 0.5}}, name="line")
    inside = restrict(model, narrow)
    assert inside is not None and inside.measured is not None
    kept = model.units[:, 0] <= 0.5 + 1e-12
    assert np.array_equal(inside.measured, model.measured[:, kept])  # type: ignore[index]
    assert restrict(without_mask(model), narrow).measured is None  # type: ignore[union-attr]


def test_a_design_point_no_task_ran_reads_short_a_run_config_keeps_its_value(model: MetaModel) -> None:
    assert model.measured is not None
    never_run = [i for i in range(len(model.units)) if not model.measured[:, i].any()]
    assert len(never_run) == 8  # n_design
    for index in never_run:
        value = model.candidate(index)["x"]
        assert len(repr(value)) <= 12, value  # float32 precision, not float64's 17 digits
        assert np.float32(SPACE.to_unit({"x": value})[0]) == np.float32(model.units[index, 0])
    assert model.candidate(_column(model, 0.15)) == {"x": 0.15}
