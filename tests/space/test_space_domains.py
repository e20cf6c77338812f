"""A parameter's domain: an override beyond it is refused when the spec is read, not by every trial."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from autotweak.engine._study import ATTR, check_resumable, create_study
from autotweak.exceptions import SpaceError, SpecError
from autotweak.space import CategoricalParam, FixedParam, SearchSpace, available_spaces, load_space
from autotweak.spec import Experiment, load_experiment
from tests.conftest import base_spec


def _spec_with(tweaks: Any) -> dict[str, Any]:
    return base_spec(name="dom", base={}, tweaks=tweaks)


def test_an_override_beyond_the_domain_is_refused_at_load_naming_field_rule_and_value(tmp_path: Path) -> None:
    spec = _spec_with({"extends": "linear", "params": {"l1_ratio": {"high": 1.5}}})
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(spec))
    message = (
        "exp.yaml: 'tweaks.params.l1_ratio.high' must be <= 1 (the domain of l1_ratio in space 'linear'), "
        "got 1.5."
    )
    with pytest.raises(SpecError, match=re.escape(message)):
        load_experiment(tmp_path / "exp.yaml")
    narrowed = Experiment.from_dict(_spec_with({"extends": "linear", "params": {"l1_ratio": {"high": 0.5}}}))
    assert narrowed.space["l1_ratio"].high == 0.5  # type: ignore[union-attr]


def test_the_domain_is_said_to_be_the_declaring_spaces_through_a_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mine.yaml").write_text("extends: linear\nparams:\n  C: {high: 100.0}\n")
    monkeypatch.setenv("AUTOTWEAK_SPACES_PATH", str(tmp_path))
    message = "'tweaks.params.C.low' must be > 0 (the domain of C in space 'linear'), got 0.0."
    with pytest.raises(SpecError, match=re.escape(message)):
        Experiment.from_dict(_spec_with({"extends": "mine", "params": {"C": {"low": 0, "log": False}}}))


def _beyond(param: Any) -> list[tuple[str, dict[str, Any], Any]]:
    """Overrides of ``param`` just beyond each bound of its domain: (field, override, bad value)."""
    domain = param.domain.to_dict()
    out: list[tuple[str, dict[str, Any], Any]] = []
    lower = domain.get("ge", domain.get("gt"))
    upper = domain.get("le", domain.get("lt"))
    outside_low = None if lower is None else (lower if "gt" in domain else lower - 1)
    outside_high = None if upper is None else (upper if "lt" in domain else upper + 1)
    if isinstance(param, CategoricalParam):
        for bad in (outside_low, outside_high):
            if bad is not None:
                out.append(("choices[0]", {"choices": [bad, *param.choices]}, bad))
    elif isinstance(param, FixedParam):
        out += [("value", {"value": bad}, bad) for bad in (outside_low, outside_high) if bad is not None]
    else:
        if outside_low is not None:
            out.append(("low", {"low": outside_low, "log": False}, outside_low))
        if outside_high is not None:
            out.append(("high", {"high": outside_high}, outside_high))
    return out


SHIPPED = [
    (space, param.name)
    for space in sorted(available_spaces())
    for param in load_space(space).params
    if param.domain is not None
]


@pytest.mark.parametrize(("space", "name"), SHIPPED, ids=[f"{s}.{n}" for s, n in SHIPPED])
def test_every_shipped_domain_refuses_each_bound_crossed(space: str, name: str) -> None:
    """As scikit-learn's check_param_validation: the declared data drives the bad inputs."""
    param = load_space(space)[name]
    cases = _beyond(param)
    assert cases, "a domain bounds something"
    for field, override, bad in cases:
        tweaks = {"extends": space, "params": {name: override}}
        pattern = rf"'tweaks\.params\.{re.escape(name)}\.{re.escape(field)}' must be [<>]=? \S+ "
        pattern += rf"\(the domain of {re.escape(name)} in space '{space}'\), got {re.escape(repr(bad))}"
        with pytest.raises(SpecError, match=pattern):
            Experiment.from_dict(_spec_with(tweaks))


def test_shipped_domains_are_where_the_values_are_real() -> None:
    """Ratios and fractions within [0, 1], dropout and momentum below 1, counts at least 1."""
    domains = {
        (space, p.name): p.domain.to_dict()
        for space in ("linear", "hgb", "mlp", "cnn", "transformer_finetune")
        for p in load_space(space).params
        if p.domain is not None
    }
    assert domains[("linear", "l1_ratio")] == {"ge": 0, "le": 1}
    assert domains[("hgb", "max_features")] == {"gt": 0, "le": 1}
    assert domains[("mlp", "dropout")] == domains[("cnn", "dropout")] == {"ge": 0, "lt": 1}
    assert domains[("cnn", "momentum")] == {"ge": 0, "lt": 1}
    assert domains[("transformer_finetune", "warmup_ratio")] == {"ge": 0, "le": 1}
    assert domains[("mlp", "depth")] == domains[("cnn", "batch_size")] == {"ge": 1}
    assert domains[("hgb", "max_leaf_nodes")] == {"ge": 2}  # scikit-learn's own minimum
    assert domains[("linear", "C")] == {"gt": 0}


def test_a_domain_is_not_overridden_but_a_parameter_given_whole_drops_it() -> None:
    message = (
        "'tweaks.params.l1_ratio.domain' cannot be overridden: it is the values 'l1_ratio' can take at "
        "all (declared by space 'linear'); give 'l1_ratio' whole, with 'type', to define it anew"
    )
    with pytest.raises(SpecError, match=re.escape(message)):
        Experiment.from_dict(
            _spec_with({"extends": "linear", "params": {"l1_ratio": {"high": 1.5, "domain": {"le": 2}}}})
        )
    whole = {"l1_ratio": {"type": "float", "low": 0.0, "high": 1.5}}
    space = Experiment.from_dict(_spec_with({"extends": "linear", "params": whole})).space
    assert space["l1_ratio"].domain is None and space["l1_ratio"].high == 1.5  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (
            {"type": "float", "low": 0.0, "high": 1.5, "domain": {"ge": 0, "le": 1}},
            "'p.high' must be <= 1 (the domain of p), got 1.5.",
        ),
        (
            {"type": "categorical", "choices": [16, "auto"], "domain": {"ge": 1}},
            "'p.choices[1]' must be a number >= 1 (the domain of p), got 'auto'.",
        ),
        (
            {"type": "fixed", "value": 0, "domain": {"ge": 1}},
            "'p.value' must be >= 1 (the domain of p), got 0.",
        ),
        (
            {"type": "float", "low": 0.0, "high": 0.5, "domain": {"ge": 0, "gt": 0}},
            "'p.domain' must give at most one lower bound (ge or gt), got {'ge': 0, 'gt': 0}.",
        ),
        (
            {"type": "float", "low": 0.0, "high": 0.5, "domain": {"ge": 1, "lt": 1}},
            "'p.domain' must leave some value between its bounds, got {'ge': 1, 'lt': 1}.",
        ),
        (
            {"type": "float", "low": 0.0, "high": 0.5, "domain": {}},
            "'p.domain' must give a bound: ge, gt, le or lt, like {ge: 0, le: 1}, got {}.",
        ),
        (
            {"type": "float", "low": 0.0, "high": 0.5, "domain": {"min": 0}},
            "'p.domain.min' is not a known key",
        ),
        (
            {"type": "float", "low": 0.0, "high": 0.5, "domain": {"ge": "zero"}},
            "'p.domain.ge' must be a number, got 'zero'.",
        ),
    ],
)
def test_a_bad_domain_or_a_definition_beyond_its_own(definition: dict[str, Any], message: str) -> None:
    with pytest.raises(SpaceError, match=re.escape(message)):
        SearchSpace.from_dict({"p": definition})


@pytest.mark.parametrize("key", ["domain", "description"])
def test_a_study_stored_without_domains_or_with_other_descriptions_still_resumes(key: str) -> None:
    """A domain or a description changes no range: a study stored without them is the same setup."""
    experiment = Experiment.from_dict(base_spec(name="old", base={}, tweaks="linear"))
    study = create_study(experiment, optuna.storages.InMemoryStorage())
    stored = study.user_attrs[ATTR.SPEC]
    assert stored["tweaks"]["params"]["l1_ratio"]["domain"] == {"ge": 0, "le": 1}
    assert stored["tweaks"]["params"]["l1_ratio"]["description"]
    for definition in stored["tweaks"]["params"].values():
        definition.pop(key, None)
    stored["tweaks"]["params"]["C"]["description"] = "worded otherwise in an older release"
    study.set_user_attr(ATTR.SPEC, stored)
    check_resumable(study, experiment)
    changed = Experiment.from_dict(
        base_spec(name="old", base={}, tweaks={"extends": "linear", "params": {"l1_ratio": {"high": 0.5}}})
    )
    with pytest.raises(Exception, match=r"tweaks\.params\.l1_ratio\.high: stored 1\.0, now 0\.5"):
        check_resumable(study, changed)
