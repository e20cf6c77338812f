"""Rules a space must meet at load so that Optuna, MLflow and the grid agree on it."""

from __future__ import annotations

import re

import optuna
import pytest

from autotweak.exceptions import SpaceError
from autotweak.space import FloatParam, SearchSpace, load_space


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


def test_a_bare_list_is_refused_naming_both_meanings():
    """``opt: [adam, sgd]`` reads as choices to most people; it once fixed every trial to the list."""
    message = (
        "'opt' must be {type: categorical, choices: [adam, sgd]} to search among these values, or "
        "{type: fixed, value: [adam, sgd]} to give every trial the list itself, got ['adam', 'sgd']."
    )
    with pytest.raises(SpaceError, match=re.escape(message)):
        SearchSpace.from_dict({"opt": ["adam", "sgd"]})
    fixed = SearchSpace.from_dict({"opt": {"type": "fixed", "value": ["adam", "sgd"]}, "epochs": 30})
    assert {p.name: p.value for p in fixed.params} == {"opt": ["adam", "sgd"], "epochs": 30}, "bare 30"


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


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (
            {"type": "int", "low": 0, "high": 10, "step": 4},
            "'a.high' must be low plus a multiple of step 4 (8 or 12), got 10.",
        ),
        (
            {"type": "int", "low": 0, "high": 3, "step": 4},
            "'a.high' must be low plus a multiple of step 4 (0 or 4), got 3.",
        ),
        (
            {"type": "float", "low": 0, "high": 1, "step": 0.3},
            "'a.high' must be low plus a multiple of step 0.3 (0.9 or 1.2), got 1.0.",
        ),
    ],
)
def test_a_step_that_does_not_divide_the_range_is_refused(definition, message):
    """Optuna would narrow the range and warn; autotweak's grid would still reach the old high."""
    with pytest.raises(SpaceError, match=re.escape(message)):
        SearchSpace.from_dict({"a": definition})


@pytest.mark.parametrize(
    ("low", "high", "step"), [(0.0, 1.0, 0.1), (0.1, 0.7, 0.2), (0.0, 0.9, 0.3), (1e-3, 1e-3, 1e-4)]
)
def test_a_float_step_that_divides_up_to_rounding_is_allowed(low, high, step):
    space = SearchSpace.from_dict({"a": {"type": "float", "low": low, "high": high, "step": step}})
    grid = space.grid(50)["a"]
    assert max(grid) <= high + 1e-12
    assert all(space["a"].contains(v) for v in grid)


def test_the_int_grid_stays_inside_the_range_optuna_searches():
    space = SearchSpace.from_dict({"a": {"type": "int", "low": 0, "high": 8, "step": 4}})
    assert space.grid(5)["a"] == [0, 4, 8]


def test_a_float_off_its_step_grid_is_not_contained():
    param = FloatParam("b", 0.0, 0.9, step=0.3)
    assert param.contains(0.6) and param.contains(0.9) and param.contains(0.0)
    assert not param.contains(0.5)
    assert not param.contains(1.2)
    space = SearchSpace((param,))
    assert space.invalid({"b": 0.5}) == ["b"]


def test_an_extends_cycle_written_with_another_path_is_found(tmp_path):
    (tmp_path / "lib2").mkdir()
    (tmp_path / "lib2" / "selfpath.yaml").write_text("extends: ../lib2/selfpath.yaml\n")
    with pytest.raises(SpaceError, match="'extends' must not form a cycle, got "):
        load_space("lib2/selfpath.yaml", base_dir=tmp_path)


def test_the_cycle_message_says_extends_once(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(SpaceError) as info:
        load_space(tmp_path / "a.yaml")
    message = str(info.value)
    assert "'extends' 'extends'" not in message
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    assert message == f"{b}: 'extends' must not form a cycle, got {a} -> {b} -> {a}."
