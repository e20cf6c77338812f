"""Matching a meta-model to a space: by parameter name and kind, in any order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotweak import SearchSpace, load_space
from autotweak.meta import (
    Histories,
    MetaModelError,
    PastTrial,
    TaskHistory,
    fit_meta_model,
    resolve_meta_model,
)
from autotweak.meta._library import restrict
from tests.meta._helpers import TOY_SPACE as SPACE


def _model_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    tasks = []
    for i in range(2):
        trials = tuple(
            PastTrial(config, -abs(np.log10(config["lr"]) + 1 + i))
            for config in (SPACE.from_unit(rng.uniform(size=3).tolist()) for _ in range(20))
        )
        tasks.append(TaskHistory(f"past{i}", "maximize", trials))
    return fit_meta_model(Histories(tuple(tasks)), SPACE, n_design=16).save(tmp_path / "toy.meta.npz")


def _reversed(space: SearchSpace) -> SearchSpace:
    return SearchSpace.from_dict(dict(reversed(list(space.to_dict().items()))), name=space.name)


def _configs(model: object) -> list[tuple[tuple[str, object], ...]]:
    from autotweak.meta import MetaModel

    assert isinstance(model, MetaModel)
    return sorted(tuple(sorted(model.candidate(i).items())) for i in range(len(model.units)))


def test_a_space_with_its_parameters_in_another_order_fits(tmp_path: Path) -> None:
    path = _model_file(tmp_path)
    reordered = _reversed(SPACE)
    assert reordered.names == ["act", "depth", "lr"]
    model = resolve_meta_model(path, reordered)
    assert model is not None and model.space is reordered
    # The same candidates, each config whole: its unit point follows the new order.
    assert _configs(model) == _configs(resolve_meta_model(path, SPACE))
    for i in range(len(model.units)):
        assert reordered.to_unit(model.candidate(i)) == pytest.approx(model.units[i].tolist())


def test_auto_finds_the_shipped_model_for_a_reordered_library_space() -> None:
    hgb = load_space("hgb")
    reordered = _reversed(hgb)
    assert reordered.names != hgb.names
    found, shipped = resolve_meta_model("auto", reordered), resolve_meta_model("auto", hgb)
    assert found is not None and shipped is not None
    assert found.n_tasks == shipped.n_tasks and _configs(found) == _configs(shipped)


def test_a_parameter_of_another_kind_does_not_fit(tmp_path: Path) -> None:
    path = _model_file(tmp_path)
    other = SPACE.to_dict() | {"depth": {"type": "float", "low": 1.0, "high": 8.0}}
    space = SearchSpace.from_dict(other)
    with pytest.raises(MetaModelError, match=r"do not fit the space.*'depth': 'int'.*'depth': 'float'"):
        resolve_meta_model(path, space)
    assert restrict(resolve_meta_model(path, SPACE), space) is None  # type: ignore[arg-type]


def test_auto_says_once_which_shipped_model_it_uses(caplog: pytest.LogCaptureFixture) -> None:
    """A study resolves its model several times (the baseline, each sampler, the summary)."""
    from autotweak.meta import _library

    _library._said.clear()
    hgb = load_space("hgb")
    with caplog.at_level("DEBUG", logger="autotweak"):
        for _ in range(3):
            assert resolve_meta_model("auto", hgb) is not None
    said = [r for r in caplog.records if "meta-learner: using" in r.getMessage()]
    assert [r.levelname for r in said] == ["INFO", "DEBUG", "DEBUG"]
    assert "hgb.meta.npz (47 past tasks)" in said[0].getMessage()


@pytest.mark.parametrize("name", ["hgb", "mlp"])
def test_the_shipped_models_say_which_scores_were_measured(name: str) -> None:
    """Every benchmark task ran the same 256 configs; the 256 design points are predicted."""
    model = resolve_meta_model("auto", load_space(name))
    assert model is not None and model.measured is not None
    ran_by_all, ran_by_none = model.measured.all(axis=0), ~model.measured.any(axis=0)
    assert (int(ran_by_all.sum()), int(ran_by_none.sum())) == (256, 256)


def test_a_choice_no_candidate_takes_is_named_with_the_candidates_choices(tmp_path: Path) -> None:
    path = _model_file(tmp_path)
    space = SearchSpace.from_dict(SPACE.to_dict() | {"act": {"type": "categorical", "choices": ["gelu"]}})
    with pytest.raises(MetaModelError) as raised:
        resolve_meta_model(path, space)
    said = str(raised.value)
    assert "candidates lies inside it: act one of ['gelu'] where the candidates take [" in said
    assert "'relu'" in said and "'tanh'" in said and "lr" not in said.split("inside it:")[1], said
