"""The base config gives each value once, whatever order and spelling its keys use."""

from __future__ import annotations

import re
from typing import Any

import pytest

from autotweak import SpecError
from autotweak.spec import Experiment
from tests.conftest import base_spec

_ONCE = "'base' must give each value once, as a dotted name or nested"


@pytest.mark.parametrize(
    ("base", "why"),
    [
        ({"optim": 5, "optim.lr": 0.01}, "'optim.lr' sets a value inside 'optim', which is 5"),
        (
            {"optim.lr": 0.01, "optim": 5},
            "'optim' is given as 5 and also has values set inside it ({'lr': 0.01})",
        ),
        ({"optim.lr": 0.01, "optim": {"lr": 0.02}}, "'optim.lr' is given twice (0.01 and 0.02)"),
        ({"optim": {"lr": 0.02}, "optim.lr": 0.01}, "'optim.lr' is given twice (0.02 and 0.01)"),
        ({"optim.lr": 0.01, "optim": {"lr": 0.01}}, "'optim.lr' is given twice (0.01 and 0.01)"),
        ({"a": {"b.c": 1, "b": {"c": 2}}}, "'a.b.c' is given twice (1 and 2)"),
        ({"a.b.c": 1, "a": {"b": 3}}, "'a.b' is given as 3 and also has values set inside it ({'c': 1})"),
        (
            {"optim.lr": 0.01, "optim": None},
            "'optim' is given as None and also has values set inside it ({'lr': 0.01})",
        ),
    ],
    ids=repr,
)
def test_a_value_given_twice_is_refused_in_any_order(base: dict[str, Any], why: str) -> None:
    with pytest.raises(SpecError) as info:
        Experiment.from_dict(base_spec(base={"x": 0.0, **base}), source="y.yaml")
    assert str(info.value) == f"y.yaml: {_ONCE} ({why}).", str(info.value)


@pytest.mark.parametrize(
    "base",
    [
        {"optim.lr": 0.01, "optim": {"momentum": 0.9}},
        {"optim": {"momentum": 0.9}, "optim.lr": 0.01},
        {"optim": {"lr": 0.01}, "optim.momentum": 0.9},
    ],
    ids=repr,
)
def test_the_same_path_nested_and_dotted_merges(base: dict[str, Any]) -> None:
    from autotweak._config import merge_config

    experiment = Experiment.from_dict(base_spec(base={"x": 0.0, **base}))
    assert merge_config(experiment.base, {}) == {"x": 0.0, "optim": {"lr": 0.01, "momentum": 0.9}}


def test_tweaks_still_replace_base_values() -> None:
    from autotweak._config import merge_config

    assert merge_config({"optim": {"lr": 0.1}}, {"optim.lr": 0.01, "optim.wd": 0.0}) == {
        "optim": {"lr": 0.01, "wd": 0.0}
    }
    with pytest.raises(SpecError, match=re.escape(_ONCE)):
        Experiment.from_dict(base_spec(base={"optim.lr": 0.01, "optim": 5}))


def test_a_stored_spec_from_before_the_rule_still_loads() -> None:
    """A study created when a value given twice was taken (the last won) can still be joined."""
    base = {"x": 0.0, "optim": {"lr": 0.02}, "optim.lr": 0.01}
    stored = Experiment.from_dict(base_spec(base=base), source="<study old>")
    assert stored.base == base
