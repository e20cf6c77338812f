"""The per-task surrogates are cached within a memory budget, the least recently used dropped first."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesRegressor

from autotweak.meta import _fit
from autotweak.meta._fit import _ForestCache


def _fit_on(n: int, seed: int = 0) -> ExtraTreesRegressor:
    rng = np.random.default_rng(seed)
    return ExtraTreesRegressor(n_estimators=4, random_state=0).fit(rng.random((n, 3)), rng.random(n))


def _size(forest: ExtraTreesRegressor) -> int:
    nodes = sum(tree.tree_.node_count for tree in forest.estimators_)
    return _ForestCache.PER_FOREST + _ForestCache.PER_NODE * nodes


def test_a_cached_forest_is_not_fitted_again() -> None:
    cache = _ForestCache(budget=10**9)
    calls: list[int] = []

    def fit() -> ExtraTreesRegressor:
        calls.append(1)
        return _fit_on(20)

    first = cache.get("a", fit)
    assert cache.get("a", fit) is first
    assert len(calls) == 1
    assert cache.size == _size(first)


def test_the_budget_drops_the_least_recently_used_forest() -> None:
    one = _size(_fit_on(20))
    cache = _ForestCache(budget=2 * one + one // 2)  # room for two forests of this size
    a = cache.get("a", lambda: _fit_on(20))
    b = cache.get("b", lambda: _fit_on(20))
    assert cache.get("a", lambda: _fit_on(20, seed=9)) is a  # "a" is now the most recent
    cache.get("c", lambda: _fit_on(20))
    assert len(cache) == 2 and cache.size <= cache.budget
    assert cache.get("a", lambda: _fit_on(20, seed=9)) is a  # kept; "b" went
    assert cache.get("b", lambda: _fit_on(20, seed=9)) is not b  # "b" went: fitted again


def test_a_forest_over_the_budget_is_returned_but_not_kept() -> None:
    cache = _ForestCache(budget=1_000)
    forest = cache.get("big", lambda: _fit_on(50))
    assert isinstance(forest, ExtraTreesRegressor)
    assert len(cache) == 0 and cache.size == 0


def test_a_surrogate_is_kept_per_training_data_and_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_fit, "_FORESTS", _ForestCache(budget=10**9))
    rng = np.random.default_rng(0)
    x, y = rng.random((12, 2)), rng.random(12)
    forest = _fit._fitted(x.tobytes(), y.tobytes(), 2, 0)
    assert _fit._fitted(x.tobytes(), y.tobytes(), 2, 0) is forest
    other_seed = _fit._fitted(x.tobytes(), y.tobytes(), 2, 1)
    other_scores = _fit._fitted(x.tobytes(), (1 - y).tobytes(), 2, 0)
    other_configs = _fit._fitted((1 - x).tobytes(), y.tobytes(), 2, 0)
    assert len({id(forest), id(other_seed), id(other_scores), id(other_configs)}) == 4
    assert other_seed.random_state == 1
    assert len(_fit._FORESTS) == 4
    _fit._FORESTS.clear()
    assert len(_fit._FORESTS) == 0 and _fit._FORESTS.size == 0
