"""The two forms of ``tweaks``: structured (``extends``/``params``/``drop``) and flat.

A key that fits neither form is an error naming it, never a silent fixed "parameter".
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from autotweak import SpecError
from autotweak.spec import Experiment, load_experiment
from tests.conftest import base_spec

_X = {"type": "float", "low": 0.0, "high": 1.0}


def _load(tmp_path: Path, tweaks: Any) -> Experiment:
    path = tmp_path / "y.yaml"
    path.write_text(yaml.safe_dump(base_spec(tweaks=tweaks, base={})))
    return load_experiment(path)


@pytest.mark.parametrize(
    ("tweaks", "message"),
    [
        ({"extends": "mlp", "drops": ["dropout"]}, "'tweaks.drops' is not a known key; did you mean 'drop'?"),
        (
            {"extends": "mlp", "parmas": {"width": {"high": 128}}},
            "'tweaks.parmas' is not a known key; did you mean 'params'?",
        ),
        (
            {"params": {"x": _X}, "extnds": "mlp"},
            "'tweaks.extnds' is not a known key; did you mean 'extends'?",
        ),
        ({"extends": "mlp", "zzz": 1}, "'tweaks.zzz' is not a known key; allowed keys: name, description"),
        ({"parmas": {"x": _X}}, "'tweaks.parmas' is not a known key; did you mean 'params'?"),
        ({"extnds": "mlp"}, "'tweaks.extnds' is not a known key; did you mean 'extends'?"),
        ({"drops": ["dropout"], "x": _X}, "'tweaks.drops' is not a known key; did you mean 'drop'?"),
        ({"nmae": "mine", "x": _X}, "'tweaks.nmae' is not a known key; did you mean 'name'?"),
        (
            {"extends": "mlp", "x": _X},
            "'tweaks.x' is not a known key; with 'extends', parameters go under 'params'",
        ),
        (
            {"name": "mine", "x": _X},
            "'tweaks.x' is not a known key; with 'name', parameters go under 'params'",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_misspelled_or_misplaced_tweaks_key_is_named(tmp_path: Path, tweaks: Any, message: str) -> None:
    with pytest.raises(SpecError) as info:
        _load(tmp_path, tweaks)
    text = str(info.value)
    assert text.startswith(f"{tmp_path / 'y.yaml'}: {message}"), text
    assert "\n" not in text


def test_the_flat_form_still_takes_parameters_of_any_name(tmp_path: Path) -> None:
    fixed = {"type": "fixed", "value": ["dropout"]}
    space = _load(tmp_path, {"x": _X, "dropout": 0.1, "drops": fixed, "name": _X}).space
    assert sorted(space.names) == ["dropout", "drops", "name", "x"]
    assert sorted(p.name for p in space.tunable) == ["name", "x"]


def test_the_structured_form_still_extends_and_drops(tmp_path: Path) -> None:
    space = _load(tmp_path, {"extends": "mlp", "drop": ["dropout"], "params": {"width": {"high": 128}}}).space
    assert "dropout" not in space and space["width"].high == 128
    assert "extends" not in space and "drop" not in space


def test_a_stored_spec_reads_back_its_tweaks() -> None:
    experiment = Experiment.from_dict(base_spec(tweaks={"extends": "mlp"}, base={}))
    again = Experiment.from_dict(experiment.to_dict())
    assert again.space.params == experiment.space.params
    with pytest.raises(SpecError, match=re.escape("'tweaks.drops' is not a known key")):
        Experiment.from_dict(base_spec(tweaks={"extends": "mlp", "drops": ["dropout"]}, base={}))
