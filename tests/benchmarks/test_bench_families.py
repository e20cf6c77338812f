import pytest

from benchmarks.design import design_configs
from benchmarks.families import FAMILIES
from benchmarks.tasks import load_task


@pytest.mark.parametrize(("family", "n_steps"), [("hgb", 20), ("mlp", 30)])
def test_training_returns_a_full_deterministic_curve(family: str, n_steps: int) -> None:
    task = load_task("sklearn_iris")
    config = design_configs(family, 1)[0]
    first = FAMILIES[family].train(task, config)
    again = FAMILIES[family].train(task, config)
    assert first.steps == FAMILIES[family].steps
    assert len(first.steps) == len(first.val_scores) == len(first.test_scores) == n_steps
    assert all(0.0 <= score <= 1.0 for score in first.val_scores + first.test_scores)
    assert first.fit_seconds > 0
    assert (first.val_scores, first.test_scores) == (again.val_scores, again.test_scores)
