"""The descriptor prior: a soft start that the new task's results can overrule, robust to bad values."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
import pytest

from autotweak import SearchSpace
from autotweak.meta import MetaModel, MetaSampler, Proposer, descriptor_weights, proposals_of

SPACE = SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0}})
UNITS = np.linspace(0.0, 1.0, 10)[:, None]


def _model(descriptors: Sequence[Mapping[str, Any]], *, against: Sequence[int] = (1,)) -> MetaModel:
    """Past tasks that prefer a large x, except those in ``against``, which prefer a small one."""
    scores = np.array([1.0 - UNITS[:, 0] if t in against else UNITS[:, 0] for t in range(len(descriptors))])
    names = tuple(f"task{t}" for t in range(len(descriptors)))
    return MetaModel(SPACE, names, tuple(descriptors), UNITS, scores, np.full(len(descriptors), 10))


def test_a_task_the_descriptor_finds_unlike_can_still_win_on_the_results() -> None:
    model = _model([{"n_rows": 569}, {"n_rows": 178}, {"n_rows": 569}])
    prior = descriptor_weights(model, {"n_rows": 569})
    assert prior is not None and prior[0] == prior[2] == prior.max()
    assert 0 < prior[1] < prior[0], "the prior prefers the alike tasks, and zeroes out none"
    # Six results ranked exactly as task 1 ranks them (small x is better), unlike the others.
    observed = np.arange(6)
    values = [1.0 - UNITS[i, 0] for i in observed]
    weights = Proposer(model, prior).weights(observed, values)
    assert int(np.argmax(weights)) == 1 and weights[1] > 0.9


def test_the_bandwidth_does_not_shrink_onto_the_nearest_tasks() -> None:
    model = _model([{"n_rows": 100}, {"n_rows": 100}, {"n_rows": 100}, {"n_rows": 200}])
    prior = descriptor_weights(model, {"n_rows": 100})
    assert prior is not None and prior[3] / prior[0] > 0.1  # the floor is not what holds it up


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), np.float64("nan")])
def test_a_non_finite_feature_of_the_new_task_is_ignored(bad: float) -> None:
    model = _model([{"n_rows": 569, "family": "a"}, {"n_rows": 178, "family": "b"}])
    assert descriptor_weights(model, {"n_rows": bad}) is None
    weights = descriptor_weights(model, {"n_rows": bad, "family": "a"})
    assert weights is not None and weights.tolist() == [1.0, 0.5]
    same = descriptor_weights(model, {"n_rows": bad, "n_classes": 2, "family": "a"})
    assert same is not None and same.tolist() == [1.0, 0.5]


def test_a_non_finite_feature_of_a_past_task_is_ignored_for_that_task() -> None:
    model = _model([{"n_rows": 569}, {"n_rows": float("nan")}, {"n_rows": 178}])
    weights = descriptor_weights(model, {"n_rows": 569})
    assert weights is not None and np.isfinite(weights).all()
    assert weights[0] > weights[1] > weights[2], "the task without the feature sits in between"


def test_numpy_numbers_are_numbers() -> None:
    model = _model([{"n_rows": 569}, {"n_rows": 178}, {"n_rows": 300}])
    expected = descriptor_weights(model, {"n_rows": 569.0})
    for value in (np.int64(569), np.int32(569), np.float32(569.0)):
        got = descriptor_weights(model, {"n_rows": value})
        assert got is not None and expected is not None and got.tolist() == pytest.approx(expected.tolist())


def test_a_nan_descriptor_gives_finite_proposals() -> None:
    model = _model([{"n_rows": 569}, {"n_rows": 178}, {"n_rows": 300}])
    sampler = MetaSampler(model, descriptor={"n_rows": float("nan")}, seed=0, n_meta=3)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=3)
    proposals = proposals_of(study.trials)
    assert len(proposals) == 3
    for proposal in proposals:
        assert math.isfinite(proposal["predicted"]) and math.isfinite(proposal["uncertainty"])
        assert all(math.isfinite(source["similarity"]) for source in proposal["sources"])
    assert proposals[0]["params"]["x"] == 1.0  # the best candidate of the past tasks' majority


def test_meta_features_the_model_lacks_are_said_to_be_ignored_once(caplog: pytest.LogCaptureFixture) -> None:
    model = _model([{"family": "hgb"}, {"family": "hgb"}], against=(5,))
    described = {"family": "hgb", "log_rows": 6.3, "n_classes": 2.0}
    with caplog.at_level(logging.INFO, logger="autotweak.meta"):
        descriptor_weights(model, described)
        descriptor_weights(model, described)
    notes = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert len(notes) == 1
    assert "no dataset meta-features" in notes[0] and "log_rows, n_classes" in notes[0]


def test_a_text_value_where_past_tasks_have_numbers_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    model = _model([{"n_rows": 100.0}, {"n_rows": 5000.0}], against=(7,))
    with caplog.at_level(logging.WARNING, logger="autotweak.meta"):
        assert descriptor_weights(model, {"n_rows": "abc"}) is not None
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [
        "meta-learner: the descriptor's n_rows must be numbers, as the past tasks' are, got n_rows='abc'; "
        "as text they match no past task and weigh nothing"
    ]
