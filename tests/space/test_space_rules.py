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


def test_a_float_step_with_log_is_refused_even_a_step_of_one():
    message = "'a.step' cannot be combined with log: true, got 1.0."
    with pytest.raises(SpaceError, match=re.escape(message)):
        SearchSpace.from_dict({"a": {"type": "float", "low": 0.1, "high": 10, "log": True, "step": 1}})


def test_an_int_step_of_one_with_log_stays_allowed():
    space = SearchSpace.from_dict({"a": {"type": "int", "low": 1, "high": 64, "log": True, "step": 1}})
    assert space["a"].log
    with pytest.raises(SpaceError, match=re.escape("'a.step' cannot be combined with log: true, got 2.")):
        SearchSpace.from_dict({"a": {"type": "int", "low": 1, "high": 65, "log": True, "step": 2}})
