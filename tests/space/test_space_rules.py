"""Rules a space must meet at load so that Optuna, MLflow and the grid agree on it."""

from __future__ import annotations

import re

import optuna
import pytest

from autotweak.exceptions import SpaceError
from autotweak.space import SearchSpace


@pytest.mark.parametrize(
    ("choices", "pair"),
    [
        ([1, 2.5, True], "1 == true"),
        ([False, 0, 1.0], "false == 0"),
        ([1, 1.0], "1 == 1.0"),
        (["a", "b", "a"], '"a" == "a"'),
    ],
)
def test_choices_equal_under_eq_are_refused(choices, pair):
    """Optuna finds a choice with ==, so 1 and true would be stored as one and logged as two."""
    message = f"'act.choices' must not repeat a value ({pair}), got {choices!r}."
    with pytest.raises(SpaceError, match=re.escape(message)):
        SearchSpace.from_dict({"act": {"type": "categorical", "choices": choices}})


def test_choices_of_different_values_stay_allowed():
    choices = [1, "1", None, 2.5, False, "true"]
    space = SearchSpace.from_dict({"a": {"type": "categorical", "choices": choices}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        value = space.suggest(trial)["a"]
        study.tell(trial, 0.0)
        assert trial.params["a"] == value and type(trial.params["a"]) is type(value)
