from __future__ import annotations

import copy
import logging
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from autotweak import SpecError
from autotweak.exceptions import ObjectiveImportError, SpaceError
from autotweak.spec import Budget, Execution, Experiment, Metric, load_experiment
from tests.conftest import OBJECTIVES, base_spec


def _without(key: str) -> dict[str, Any]:
    spec = base_spec()
    del spec[key]
    return spec


# (a spec with one bad field, the fragment of the error that names field + rule + value)
REPO = Path(__file__).resolve().parents[2]

BAD_SPECS: list[tuple[dict[str, Any], str]] = [
    (_without("name"), "'name' is required but missing"),
    (base_spec(name=""), "'name' must be a non-empty string, got ''"),
    (
        base_spec(name="é" * 101),
        "'name' must be at most 200 bytes (the study's files are named after it), got 202 bytes",
    ),
    (base_spec(name="../../escape"), "'name' must name one folder and an MLflow model: no '/', '\\' or ':'"),
    (base_spec(name="a/b c"), "no control characters, and no leading '.', got 'a/b c'"),
    (base_spec(name="team:vision"), "'name' must name one folder and an MLflow model"),
    (base_spec(name="..hidden"), "and no leading '.', got '..hidden'"),
    (base_spec(name="a\\b"), "'name' must name one folder"),
    (base_spec(name="two\nlines"), "no control characters"),
    (base_spec(register_model="team/vision"), "'register_model' must name one folder and an MLflow model"),
    (base_spec(nmae="x"), "'nmae' is not a known key; did you mean 'name'?"),
    (_without("objective"), "'objective' is required but missing"),
    (base_spec(objective="no_colon"), "'objective' must be an entry point 'package.module:function'"),
    (base_spec(objective="no_such_module_xyz:f"), "'objective' must name an importable module"),
    (base_spec(objective=f"{OBJECTIVES}:missing"), "'objective' names 'missing', which module"),
    (base_spec(base=[1, 2]), "'base' must be a mapping of names to values, got [1, 2]"),
    (_without("tweaks"), "'tweaks' is required but missing"),
    (base_spec(tweaks="no_such_space"), "'tweaks' must name a search space of the library (cnn, hgb"),
    (
        base_spec(
            base={},
            baseline=False,
            tweaks={"extends": "cnn", "params": {"optimizer": {"choices": ["adamw"]}}},
        ),
        "'tweaks.params.momentum.when.optimizer' must be choices of 'optimizer' (['adamw']), got ['sgd']. "
        "(Narrowed 'optimizer' to leave ['sgd'] out? Drop 'momentum' too: tweaks.drop: [momentum].)",
    ),
    (
        base_spec(
            base={},
            baseline=False,
            tweaks="transformer_finetune",
            metric={"name": "loss", "direction": "minimize", "steps": 10},
            pruner={"name": "learned", "args": {"model": str(REPO / "meta" / "hgb.curve.json")}},
        ),
        "'pruner.args' must be valid arguments of the 'learned' pruner (the curve model (space 'hgb') fits "
        "trials of the parameters ['l2_regularization', 'learning_rate', 'max_features', 'max_leaf_nodes', "
        "'min_samples_leaf'], got a space of",
    ),
    (
        base_spec(tweaks={"extends": "hgbb"}),
        "'tweaks.extends' must name a search space of the library (cnn, hgb, linear, mlp, "
        "transformer_finetune) or a .yaml file (did you mean 'hgb'?), got 'hgbb'.",
    ),
    (
        base_spec(
            tweaks={
                "extends": "hgb",
                "params": {"m": {"type": "float", "low": 0, "high": 1, "when": {"optimizer": "sgd"}}},
            }
        ),
        "'tweaks.params.m.when' must name a parameter declared before 'm' (declared before it: "
        "learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization, max_features), got 'optimizer'.",
    ),
    (
        base_spec(tweaks={"extends": "hgb", "params": {"max_featurez": {"high": 0.9}}}),
        "'tweaks.params.max_featurez' is not a parameter of 'hgb' (did you mean 'max_features'?); "
        "a new parameter needs 'type'",
    ),
    (
        base_spec(base={"max_leaf_nodes": 1000}, tweaks="hgb"),
        "'base.max_leaf_nodes' must be an integer within the tweaks' range [4, 256], got 1000; "
        "the base config runs as trial 0 (set 'baseline: false' to skip it).",
    ),
    (
        base_spec(base={"x": 7.5}),
        "'base.x' must be within the tweaks' range [-5, 5], got 7.5",
    ),
    (
        base_spec(
            base={"x": 0.0, "solver": "lbfgs"},
            tweaks={"x": {"type": "float", "low": -5, "high": 5}, "solver": "saga"},
        ),
        "'base.solver' is fixed to 'saga' by the tweaks, got 'lbfgs': every trial would run 'saga'. "
        "Remove it from base, set it in the tweaks (tweaks.params.solver), or drop it from them "
        "(tweaks.drop: [solver]) to keep the base value.",
    ),
    (
        base_spec(
            base={"x": 0.0, "solver": "lbfgs"},
            tweaks={"x": {"type": "float", "low": -5, "high": 5}, "solver": "saga"},
            baseline=False,
        ),
        "'base.solver' is fixed to 'saga' by the tweaks, got 'lbfgs'",
    ),
    (
        base_spec(base={"loss": "hinge"}, tweaks={"loss": {"type": "categorical", "choices": ["log_loss"]}}),
        "'base.loss' must be one of the tweaks' choices ['log_loss'], got 'hinge'",
    ),
    (
        base_spec(
            base={"optim": {"lr": 9.0}}, tweaks={"optim.lr": {"type": "float", "low": 0.001, "high": 0.1}}
        ),
        "'base.optim.lr' must be within the tweaks' range [0.001, 0.1], got 9.0",
    ),
    (
        base_spec(base={"optim": 5, "optim.lr": 0.01}, baseline=False),
        "'base' must give each value once, as a dotted name or nested ('optim.lr' sets a value inside "
        "'optim', which is 5)",
    ),
    (base_spec(tweaks={"x": {"type": "float", "low": 2, "high": 1}}), "'tweaks.x' must satisfy low <= high"),
    (base_spec(tweaks={"extends": "mlp", "drop": ["nope"]}), "'tweaks.drop[0]' must name a parameter"),
    (_without("metric"), "'metric' is required but missing"),
    (base_spec(metric={"name": "loss"}), "'metric.direction' is required but missing"),
    (
        base_spec(metric={"name": "loss", "direction": "down"}),
        "'metric.direction' must be one of maximize, minimize, got 'down'",
    ),
    (base_spec(metric={"name": "loss", "direction": "minimise"}), "(did you mean 'minimize'?)"),
    (
        base_spec(metric={"name": "loss", "direction": "minimize", "steps": 0}),
        "'metric.steps' must be an integer >= 1, got 0",
    ),
    (base_spec(budget={"trials": 0}), "'budget.trials' must be an integer >= 1, got 0"),
    (base_spec(budget={"trials": "many"}), "'budget.trials' must be an integer >= 1, got 'many'"),
    (base_spec(budget={"wall_time": "ten minutes"}), "'budget.wall_time' must be seconds or a duration"),
    (base_spec(budget={"wall_time": -5}), "'budget.wall_time' must be a number > 0, got -5"),
    (base_spec(budget={"compute": 0}), "'budget.compute' must be a number > 0, got 0"),
    (base_spec(budget={}), "'budget' must set at least one of trials, wall_time, compute"),
    (base_spec(budget={"trails": 3}), "'budget.trails' is not a known key; did you mean 'trials'?"),
    (
        base_spec(budget={"compute": 5}, metric={"name": "loss", "direction": "minimize"}),
        "'metric.steps' must be set when budget.compute is set",
    ),
    (
        base_spec(sampler="tpee"),
        "'sampler' must be one of tpe, random, grid, qmc, cmaes, gp, meta (did you mean 'tpe'?), got 'tpee'",
    ),
    (
        base_spec(sampler={"name": "tpe", "args": {"n_startup": 3}}),
        "'sampler.args' must be valid arguments of the 'tpe' sampler",
    ),
    (
        base_spec(sampler={"name": "tpe", "args": {"n_startup_trial": 5}}),
        "'sampler.args' must be valid arguments of the 'tpe' sampler (TypeError: TPESampler.__init__() "
        "got an unexpected keyword argument 'n_startup_trial'; did you mean 'n_startup_trials'?), "
        "got {'n_startup_trial': 5}",
    ),
    (
        base_spec(sampler={"name": "grid", "args": {"n_point": 5}}),
        "unexpected keyword argument 'n_point'; did you mean 'n_points'?",
    ),
    (
        base_spec(sampler={"name": "meta", "args": {"base_arg": {}}}),
        "unexpected keyword argument 'base_arg'; did you mean 'base_args'?",
    ),
    (
        base_spec(pruner={"name": "hyperband", "args": {"min_resorce": 5}}),
        "'pruner.args' must be valid arguments of the 'hyperband' pruner (TypeError: "
        "HyperbandPruner.__init__() got an unexpected keyword argument 'min_resorce'; "
        "did you mean 'min_resource'?), got {'min_resorce': 5}",
    ),
    (
        base_spec(sampler={"name": "meta", "args": {"base": "grid"}}),
        "'sampler.args.base' must name a sampler of ['cmaes', 'gp', 'qmc', 'random', 'tpe'] (not grid",
    ),
    (
        base_spec(sampler={"name": "tpe", "args": {"n_startup_trials": "x"}}),
        "'sampler.args' must be valid arguments of the 'tpe' sampler (TypeError: '<' not supported",
    ),
    (
        base_spec(pruner={"name": "hyperband", "args": {"reduction_factor": 1}}),
        "'pruner.args' must be valid arguments of the 'hyperband' pruner (ZeroDivisionError",
    ),
    (base_spec(sampler={"nam": "tpe"}), "'sampler.nam' is not a known key; did you mean 'name'?"),
    (
        base_spec(pruner="medain"),
        "'pruner' must be one of median, percentile, successive_halving, hyperband, learned, none",
    ),
    (
        base_spec(pruner={"name": "median", "args": {"n_warmup_steps": -1}}),
        "'pruner.args' must be valid arguments of the 'median' pruner",
    ),
    (base_spec(seed=-1), "'seed' must be an integer >= 0, got -1"),
    (base_spec(seed="abc"), "'seed' must be an integer >= 0, got 'abc'"),
    (base_spec(execution={"workers": 0}), "'execution.workers' must be an integer >= 1, got 0"),
    (
        base_spec(execution={"heartbeat_interval": 5, "grace_period": 5}),
        "'execution.grace_period' must be greater than heartbeat_interval (5); at least twice it (10) is "
        "safe, got 5",
    ),
    (base_spec(execution={"max_retries": -1}), "'execution.max_retries' must be an integer >= 0, got -1"),
    (base_spec(execution={"worker": 2}), "'execution.worker' is not a known key; did you mean 'workers'?"),
    (base_spec(storage=""), "'storage' must be a non-empty string, got ''"),
    (base_spec(tracking_uri=3), "'tracking_uri' must be a non-empty string, got 3"),
    (base_spec(tags=["a"]), "'tags' must be a mapping of names to values, got ['a']"),
    (base_spec(baseline="yes"), "'baseline' must be true or false, got 'yes'"),
    (
        base_spec(tweaks={"x": {"type": "flaot", "low": 0, "high": 1}}),
        "must be one of float, int, categorical, fixed (did you mean 'float'?), got 'flaot'",
    ),
    (
        base_spec(tweaks={"x": {"type": "integer", "low": 0, "high": 1}}),
        "(did you mean 'int'?), got 'integer'",
    ),
    (
        base_spec(tweaks={"x": {"low": 0, "high": 1}}),
        "'tweaks.x.type' is required (one of float, int, categorical, fixed)",
    ),
    (
        base_spec(metric={"name": "loss", "direction": "max"}),
        "must be one of maximize, minimize (did you mean 'maximize'?), got 'max'",
    ),
    (base_spec(sampler="TPE"), "(did you mean 'tpe'?), got 'TPE'"),
    (base_spec(pruner=False), "'pruner' must be a name (median, percentile"),
    (base_spec(base={"x": 0.0, 1: 2}), "'base' must have names (text) as keys; quote the key 1 as '1'"),
    # Names MLflow refuses would fail only when the first trial is recorded.
    (
        base_spec(metric={"name": "recall@10", "direction": "maximize"}),
        "'metric.name' must be a name MLflow can record: letters, digits, spaces and _ - . : / only, "
        "got 'recall@10'",
    ),
    (base_spec(base={"x": 0.0, "a@b": 1}), "'base.a@b' must be a name MLflow can record"),
    # A trial's params are its config flattened to dotted names: nested keys are names too.
    (
        base_spec(base={"x": 0.0, "opt": {"beta@1": 0.9}}),
        "'base.opt.beta@1' must be a name MLflow can record: letters, digits, spaces and _ - . : / only, "
        "got 'opt.beta@1'",
    ),
    (base_spec(base={"x": 0.0, "opt.sub": {"a": {"b!": 1}}}), "'base.opt.sub.a.b!' must be a name MLflow"),
    (
        base_spec(base={"x": 0.0, "opt": {"n" * 250: 1}}),
        f"'base.opt.{'n' * 250}' must be at most 250 characters (MLflow's limit for names)",
    ),
    (
        base_spec(
            tweaks={"x": {"type": "float", "low": 0, "high": 1}, "opt": {"type": "fixed", "value": {"b@": 1}}}
        ),
        "'tweaks.opt.b@' must be a name MLflow can record",
    ),
    (base_spec(tags={"team!": "x"}), "'tags.team!' must be a name MLflow can record"),
    (
        base_spec(tags={"team": ["a", "b"]}),
        "'tags.team' must be a text, a number or true/false (an MLflow tag holds one value), got ['a', 'b'].",
    ),
    (base_spec(tags={"owner": None}), "'tags.owner' must be a text, a number or true/false"),
    (
        base_spec(tweaks={"x@y": {"type": "float", "low": 0, "high": 1}}, baseline=False),
        "'tweaks.x@y' must be a name MLflow can record",
    ),
    (base_spec(seed=2**32), "'seed' must be an integer from 0 to 2147483647, or null, got 4294967296"),
    (
        base_spec(storage="/tmp/optuna.db"),
        "'storage' must be a database URL, such as sqlite:////tmp/optuna.db or postgresql://user@host/db",
    ),
    (base_spec(storage="mysql://localhost/x"), "'storage' needs the Python package of its driver 'mysqldb'"),
    (
        base_spec(tracking_uri="./mlruns"),
        "'tracking_uri' must be a database URI (such as sqlite:///mlflow.db) or a tracking server",
    ),
    (
        base_spec(sampler={"name": "grid", "args": {"n_points": 0}}),
        "'sampler.args' must be valid arguments of the 'grid' sampler "
        "(n_points must be an integer >= 1, got 0)",
    ),
    (
        base_spec(pruner={"name": "hyperband", "args": {"max_resource": 0}}),
        "(max_resource must be 'auto' or an integer >= 1, got 0)",
    ),
    (
        base_spec(
            pruner={"name": "hyperband", "args": {"min_resource": 30}},
            metric={"name": "loss", "direction": "minimize", "steps": 5},
        ),
        "(min_resource must be <= max_resource, got 30 > 5)",
    ),
    # A dotted tweak inside another tweak, or inside a base value that is not a mapping.
    (
        base_spec(
            base={},
            baseline=False,
            tweaks={
                "optim": {"type": "categorical", "choices": ["adam", "sgd"]},
                "optim.lr": {"type": "float", "low": 0.01, "high": 1.0},
            },
        ),
        "'tweaks.optim.lr' sets a value inside 'optim', which is a parameter too",
    ),
    (
        base_spec(
            base={"x": 0.0, "optim": 0.1},
            tweaks={
                "x": {"type": "float", "low": -1, "high": 1},
                "optim.lr": {"type": "float", "low": 0.01, "high": 1.0},
            },
        ),
        "'base.optim' must be a mapping: the tweak 'optim.lr' sets a value inside it",
    ),
    # Conditions no trial can meet.
    (
        base_spec(
            base={},
            baseline=False,
            tweaks={
                "opt": {"type": "categorical", "choices": ["adamw", "sgd"]},
                "z": {"type": "float", "low": 0, "high": 1, "when": {"opt": "sdg"}},
            },
        ),
        "must be choices of 'opt' (['adamw', 'sgd']), got ['sdg']. (did you mean 'sgd'?)",
    ),
    (
        base_spec(
            base={},
            baseline=False,
            tweaks={
                "n": {"type": "int", "low": 1, "high": 3},
                "z": {"type": "float", "low": 0, "high": 1, "when": {"n": 7}},
            },
        ),
        "'tweaks.z.when.n' must be values 'n' can take (1 to 3), got [7]: 'z' would never be tried",
    ),
    (
        base_spec(
            base={},
            baseline=False,
            tweaks={"c": {"type": "categorical", "choices": ["a", "b"], "when": {"c": "a"}}},
        ),
        "got 'c', the parameter itself",
    ),
    (
        base_spec(base={}, baseline=False, tweaks={"extends": "cnn"}, sampler="grid"),
        "'sampler' must not be 'grid' for a space with conditional parameters (momentum, which exists "
        "only with some values of its parent: tpe, random, qmc, cmaes or gp search such a space), "
        "got 'grid'.",
    ),
]


@pytest.mark.parametrize(("spec", "fragment"), BAD_SPECS, ids=[f[1][:40] for f in BAD_SPECS])
def test_every_bad_field_gets_its_own_clear_error(
    tmp_path: Path, spec: dict[str, Any], fragment: str
) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError) as info:
        load_experiment(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert fragment in message, message


def test_problems_in_several_fields_are_all_reported_at_once(tmp_path: Path) -> None:
    spec = base_spec(budget={"trials": 0}, samplr="tpe", seed=-1)
    spec["metric"] = {"name": "loss", "direction": "max"}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError) as info:
        load_experiment(path)
    assert str(info.value).splitlines() == [
        f"{path}: 4 problems:",
        "  'samplr' is not a known key; did you mean 'sampler'?",
        "  'metric.direction' must be one of maximize, minimize (did you mean 'maximize'?), got 'max'.",
        "  'budget.trials' must be an integer >= 1, got 0.",
        "  'seed' must be an integer >= 0, got -1.",
    ]
    fields = [problem.field for problem in info.value.problems]
    assert fields == ["samplr", "metric.direction", "budget.trials", "seed"]
    across = base_spec(
        base={"x": 9.0}, budget={"compute": 3}, metric={"name": "loss", "direction": "minimize"}
    )
    with pytest.raises(SpecError) as both:
        Experiment.from_dict(across)
    assert [p.field for p in both.value.problems] == ["base.x", "metric.steps"], "checks across fields too"
    with pytest.raises(SpecError) as one:
        Experiment.from_dict(base_spec(seed=-1))
    assert one.value.problems == [one.value] and one.value.field == "seed", "one problem: raised as it is"


def test_errors_are_value_errors_rooted_at_autotweak_error():
    from autotweak import AutotweakError

    with pytest.raises(ValueError):
        Experiment.from_dict(base_spec(seed=-1))
    assert issubclass(ObjectiveImportError, AutotweakError)


def test_valid_spec_round_trips_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(base_spec(budget={"trials": 4, "wall_time": "2m"})))
    exp = load_experiment(path)
    assert exp.budget == Budget(trials=4, wall_time=120.0)
    assert exp.metric == Metric("loss", "minimize", 5)
    assert exp.source == str(path)
    again = Experiment.from_dict(exp.to_dict())
    assert again.space == exp.space and again.metric == exp.metric and again.budget == exp.budget


def _yaml_spec(tmp_path: Path, tweaks: str, extra: str = "") -> Path:
    """exp.yaml as a person writes it: YAML's own reading of numbers and booleans applies."""
    path = tmp_path / "exp.yaml"
    path.write_text(
        f"name: s\nobjective: {OBJECTIVES}:quadratic\ntweaks:\n  {tweaks}\n"
        f"metric: {{name: loss, direction: minimize}}\n{extra}"
    )
    return path


def test_yaml_scientific_notation_strings_are_numbers(tmp_path: Path) -> None:
    path = _yaml_spec(tmp_path, "lr: {type: float, low: 1e-5, high: 1e-1, log: true}")
    assert load_experiment(path).space["lr"].low == pytest.approx(1e-5)


def test_tags_are_kept_as_yaml_writes_them_so_an_mlflow_search_finds_them(tmp_path: Path) -> None:
    tags_line = "tags: {gpu: true, spot: false, team: vision, batch: 32}\n"
    path = _yaml_spec(tmp_path, "x: {type: float, low: 0, high: 1}", tags_line)
    tags = load_experiment(path).tags
    assert tags == {"gpu": "true", "spot": "false", "team": "vision", "batch": "32"}  # tags.gpu = 'true'


def test_missing_file_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not exist"):
        load_experiment(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match=re.escape(f"{bad}:1:7: not valid YAML")):
        load_experiment(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: s\nbase: {x: 1\n",
            "y.yaml:2:7: not valid YAML: expected ',' or '}', but got the end of the file "
            "(while parsing a flow mapping that starts here)",
        ),
        (
            "name: s\nbase: {x: 1\nmetric: m\n",
            "y.yaml:2:7: not valid YAML: expected ',' or '}', but got ':' at line 3, column 7 "
            "(while parsing a flow mapping that starts here)",
        ),
        ("name: s\nbase: a: b\n", "y.yaml:2:8: not valid YAML: mapping values are not allowed here"),
        ("name: s\nobjective: *obj\n", "y.yaml:2:12: not valid YAML: found undefined alias 'obj'"),
    ],
    ids=["unclosed-at-end", "unclosed", "colon", "alias"],
)
def test_invalid_yaml_is_one_line_at_its_place(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "y.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_experiment(path)
    assert str(info.value) == f"{tmp_path}/{expected}"


def test_tweaks_can_extend_a_library_space() -> None:
    exp = Experiment.from_dict(
        base_spec(tweaks={"extends": "mlp", "params": {"width": {"high": 128}}, "drop": ["dropout"]})
    )
    assert exp.space["width"].high == 128 and "dropout" not in exp.space


def test_python_objects_are_validated_too() -> None:
    with pytest.raises(SpecError, match=re.escape("'budget.trials' must be an integer >= 1, got 0")):
        Budget(trials=0)
    with pytest.raises(SpecError, match=re.escape("'execution.workers' must be an integer >= 1")):
        Execution(workers=0)
    with pytest.raises(SpecError, match=re.escape("'metric.direction' must be one of maximize, minimize")):
        Metric("loss", "upwards")  # type: ignore[arg-type]


def test_a_study_name_is_checked_however_the_experiment_is_made() -> None:
    """Its folders are named after it: a name that is a path would write outside the study's home."""
    rule = re.escape("'name' must name one folder and an MLflow model")
    with pytest.raises(SpecError, match=rule):
        Experiment.from_dict(base_spec(name="../escape"))
    exp = Experiment.from_dict(base_spec(name="ok name-1.2_é"))
    with pytest.raises(SpecError, match=rule):
        exp.with_overrides(name="a/b")
    with pytest.raises(SpecError, match=rule):
        Experiment(name="..", space=exp.space, metric=exp.metric)


def test_baseline_needs_every_tunable_value_in_range() -> None:
    assert Experiment.from_dict(base_spec(base={"x": 0.5})).base_trial() == {"x": 0.5}
    with pytest.raises(
        SpecError, match=re.escape("'base.x' must be within the tweaks' range [-5, 5], got 50.0")
    ):
        Experiment.from_dict(base_spec(base={"x": 50.0}))
    # without a baseline trial the base only fills in what is not tweaked, so any value goes
    assert Experiment.from_dict(base_spec(base={"x": 50.0}, baseline=False)).base_trial() is None
    assert Experiment.from_dict(base_spec(base={"x": 0.5}, baseline=False)).base_trial() is None
    assert Experiment.from_dict(base_spec(base={"y": 1})).base_trial() is None, "x is not given"
    # a study created before this rule keeps its spec: read back, it loads without a baseline
    stored = Experiment.from_dict(base_spec(base={"x": 50.0}), source="<study old>")
    assert stored.base_trial() is None


_DOTTED = {
    "optim.lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True},
    "opt": {"type": "categorical", "choices": ["sgd", "adam"]},
    "optim.momentum": {"type": "float", "low": 0.5, "high": 0.99, "when": {"opt": "sgd"}},
}


@pytest.mark.parametrize(
    "base",
    [
        {"optim": {"lr": 0.01, "momentum": 0.9}, "opt": "sgd", "other": 5},
        {"optim.lr": 0.01, "optim.momentum": 0.9, "opt": "sgd", "other": 5},
        {"optim.lr": 0.01, "optim": {"momentum": 0.9}, "opt": "sgd", "other": 5},
    ],
    ids=["nested", "flat", "mixed"],
)
def test_dotted_tweaks_find_their_base_values_nested_or_flat(base: dict[str, Any]) -> None:
    """README: dotted names such as optim.lr set nested values; the base may spell them either way."""
    from autotweak._config import merge_config

    experiment = Experiment.from_dict(base_spec(base=base, tweaks=_DOTTED))
    assert experiment.base_trial() == {"optim.lr": 0.01, "opt": "sgd", "optim.momentum": 0.9}
    # the objective always receives the nested form, whichever way the base spelled it
    config = merge_config(experiment.base, {"optim.lr": 0.05, "opt": "sgd", "optim.momentum": 0.6})
    assert config == {"optim": {"lr": 0.05, "momentum": 0.6}, "opt": "sgd", "other": 5}
    assert experiment.trial_config({"optim.lr": 0.05, "opt": "sgd", "optim.momentum": 0.6}) == config
    # with adam, the base's momentum is inactive: out of the config, however the base spelled it
    adam = experiment.trial_config({"optim.lr": 0.05, "opt": "adam"})
    assert adam == {"optim": {"lr": 0.05}, "opt": "adam", "other": 5}
    bad = copy.deepcopy(base)  # the same spelling, with momentum out of range
    if "optim.momentum" in bad:
        bad["optim.momentum"] = 2.0
    else:
        bad["optim"]["momentum"] = 2.0
    with pytest.raises(SpecError, match=re.escape("'base.optim.momentum' must be within the tweaks' range")):
        Experiment.from_dict(base_spec(base=bad, tweaks=_DOTTED))


def test_extends_a_space_file_next_to_the_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Like the objective's file, a space file is looked for in the spec's folder first."""
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "myspace.yaml").write_text("params:\n  x: {type: float, low: -1.0, high: 1.0}\n")
    spec = base_spec(tweaks={"extends": "myspace.yaml", "params": {"x": {"high": 0.5}}})
    (sub / "exp.yaml").write_text(yaml.safe_dump(spec))
    (sub / "plain.yaml").write_text(yaml.safe_dump(base_spec(tweaks="myspace.yaml")))
    monkeypatch.chdir(tmp_path)
    assert load_experiment("sub/exp.yaml").space["x"].high == 0.5
    assert load_experiment("sub/plain.yaml").space["x"].high == 1.0
    # a path relative to the working directory still works, as before
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "exp.yaml").write_text(
        yaml.safe_dump(base_spec(tweaks={"extends": "sub/myspace.yaml"}))
    )
    assert load_experiment("specs/exp.yaml").space["x"].high == 1.0
    monkeypatch.chdir(sub)
    with pytest.raises(
        SpecError, match=re.escape("'tweaks.extends' must name an existing search space file")
    ):
        load_experiment(tmp_path / "specs" / "exp.yaml")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def train(c, t):\n    return (\n", "SyntaxError: '(' was never closed ({file}, line 2)."),
        (
            "import os\nraise RuntimeError('boom at import')\n",
            "RuntimeError: boom at import ({file}, line 2).",
        ),
        (
            "import no_such_pkg_xyz\n",
            "ModuleNotFoundError: No module named 'no_such_pkg_xyz' ({file}, line 1).",
        ),
    ],
    ids=["syntax", "raises", "imports-a-missing-module"],
)
@pytest.mark.parametrize("form", ["file", "module"])
def test_an_objective_that_fails_at_import_is_a_one_line_error(
    tmp_path: Path, source: str, expected: str, form: str
) -> None:
    module = f"objective_{form}_{abs(hash(source)) % 10**8}"
    (tmp_path / f"{module}.py").write_text(source)
    ref = f"{module}.py:train" if form == "file" else f"{module}:train"
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(base_spec(objective=ref)))
    with pytest.raises(ObjectiveImportError) as info:
        load_experiment(path)
    message = f"{path}: 'objective' could not be imported: " + expected.format(file=f"{module}.py")
    assert str(info.value) == message
    assert info.value.__cause__ is None and info.value.__suppress_context__, "no chained traceback"


@pytest.mark.parametrize("form", ["file", "module"])
def test_an_objective_whose_module_starts_the_study_is_refused_naming_the_line(
    tmp_path: Path, home: Path, form: str
) -> None:
    """A script that names itself as the objective and calls ``optimize`` unguarded.

    Importing it for its objective runs that call again: unrefused, a file recursed until
    Python gave up (then a KeyError) and a module ran the study inside its own import.
    """
    module = f"selfie_{form}"
    ref = f"{module}.py:train" if form == "file" else f"{module}:train"
    spec = tmp_path / "exp.yaml"
    spec.write_text(yaml.safe_dump(base_spec(objective=ref, budget={"trials": 2})))
    (tmp_path / f"{module}.py").write_text(
        "import autotweak\n\ndef train(config):\n    return config['x']\n\n"
        f"autotweak.optimize({str(spec)!r})\n"
    )
    with pytest.raises(ObjectiveImportError) as info:
        load_experiment(spec)
    assert str(info.value) == (
        f"{spec}: 'objective' names {ref.partition(':')[0]}, whose module-level code starts the study "
        f"({module}.py, line 6), so importing it for its objective starts the study again; put that "
        'code under `if __name__ == "__main__":`.'
    )
    assert not (home / "optuna.db").exists(), "no study was run by the import"
    assert f"autotweak_objective_{module}" not in " ".join(sys.modules) and module not in sys.modules
    (tmp_path / f"{module}.py").write_text("def train(config):\n    return config['x']\n")
    assert load_experiment(spec).resolve_objective()({"x": 2.0}) == 2.0, "fixed, it loads"


def _meta_spec(path: Path, model: str) -> None:
    path.write_text(yaml.safe_dump(base_spec(sampler={"name": "meta", "args": {"model": model}})))


def test_a_model_file_is_looked_for_next_to_the_spec_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the space and objective files are: then a resume or worker elsewhere finds it too."""
    import numpy as np

    from autotweak.meta import Histories, PastTrial, TaskHistory, fit_meta_model

    space = Experiment.from_dict(base_spec()).space
    rng = np.random.default_rng(0)
    trials = tuple(PastTrial({"x": float(x)}, -(float(x) ** 2)) for x in rng.uniform(-5, 5, size=12))
    sub = tmp_path / "sub"
    sub.mkdir()
    histories = Histories((TaskHistory("past", "maximize", trials),))
    fit_meta_model(histories, space, n_design=8).save(sub / "m.npz")
    _meta_spec(sub / "exp.yaml", "m.npz")
    monkeypatch.chdir(tmp_path)
    experiment = load_experiment("sub/exp.yaml")
    assert experiment.sampler.args["model"] == str(sub / "m.npz")
    assert experiment.to_dict()["sampler"]["args"]["model"] == str(sub / "m.npz"), "stored for a resume"
    (tmp_path / "specs").mkdir()
    _meta_spec(tmp_path / "specs" / "exp.yaml", "sub/m.npz")
    found = load_experiment("specs/exp.yaml").sampler.args["model"]
    assert found == "sub/m.npz", "found in the working directory, as before"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "name: a\nname: b\n",
            ":2:1: not valid YAML: found key 'name' twice in one mapping (first on line 1)",
        ),
        (b"name: caf\xe9\n", ": is not UTF-8 text: byte 0xe9 on line 1 (save it as UTF-8)"),
    ],
)
def test_a_file_yaml_would_misread_is_refused(tmp_path: Path, text: str | bytes, fragment: str) -> None:
    path = tmp_path / "exp.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(SpecError) as info:
        load_experiment(path)
    assert str(info.value).startswith(f"{path}") and fragment in str(info.value), str(info.value)


def test_an_exponent_without_a_dot_is_a_number_as_in_yaml_1_2(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    spec = base_spec(tweaks={"x": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}})
    text = yaml.safe_dump(spec).replace("base:\n  x: 0.0", "base:\n  x: 1e-3\n  wd: 1e-4")
    path.write_text(text)
    experiment = load_experiment(path)
    assert experiment.base == {"x": 0.001, "wd": 0.0001}, "PyYAML alone reads both as strings"
    assert experiment.base_trial() == {"x": 0.001}


SIGNATURES = """
def none(): return 0.0
def three(config, trial, extra): return 0.0
def keyword_only(*, config): return 0.0
def fine(config, trial=None, *, verbose=False): return 0.0
def also_fine(*args): return 0.0
"""


@pytest.mark.parametrize("name", ["none", "three", "keyword_only"])
def test_an_objective_that_cannot_take_the_config_is_refused_at_load(tmp_path: Path, name: str) -> None:
    (tmp_path / "obj.py").write_text(SIGNATURES)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(base_spec(objective=f"obj.py:{name}")))
    with pytest.raises(
        ObjectiveImportError,
        match=rf"'objective' must name a function called as f\(config\) or f\(config, trial\), got {name}\(",
    ):
        load_experiment(path)


@pytest.mark.parametrize("name", ["fine", "also_fine"])
def test_objectives_that_take_the_config_load(tmp_path: Path, name: str) -> None:
    (tmp_path / "obj.py").write_text(SIGNATURES)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(base_spec(objective=f"obj.py:{name}")))
    assert callable(load_experiment(path).resolve_objective())


def test_a_file_objective_runs_its_module_once_per_process_while_the_file_is_unchanged(
    tmp_path: Path, home: Path
) -> None:
    from autotweak import optimize

    runs = tmp_path / "module_runs.txt"
    code = (
        f"with open({str(runs)!r}, 'a') as f:\n    f.write('ran\\n')\n"
        "def train(config):\n    return (config['x'] - 1.0) ** 2\n"
    )
    for folder, offset in (("a", 1.0), ("b", 2.0)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "obj.py").write_text(code.replace("1.0", str(offset)))
    spec = tmp_path / "exp.yaml"
    spec.write_text(
        yaml.safe_dump(base_spec(objective="a/obj.py:train", budget={"trials": 2}, base={"x": 1.0}))
    )
    result = optimize(load_experiment(spec))
    assert result.best_value == 0.0, "trial 0 is the base config x = 1"
    assert runs.read_text().count("ran") == 1, "spec check, run and worker share one import"
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(base_spec(objective="b/obj.py:train")))
    train_b = load_experiment(other).resolve_objective()
    assert train_b({"x": 1.0}) == 1.0, "a file of the same name in another folder is its own module"
    assert runs.read_text().count("ran") == 2


def test_problems_inside_one_field_are_all_reported_at_once(tmp_path: Path) -> None:
    spec = base_spec(
        tweaks={
            "x": {"type": "float", "low": 5.0, "high": -5.0},
            "y": {"type": "int", "low": 1},
            "z": {"type": "float", "low": 0.0, "high": 1.0},
        },
        metric={"name": "loss", "direction": "up", "steps": -1},
    )
    with pytest.raises(SpecError) as info:
        Experiment.from_dict(spec)
    fields = [problem.field for problem in info.value.problems]
    assert fields == ["tweaks.x", "tweaks.y.high", "metric.direction", "metric.steps"]
    from autotweak.space import SearchSpace

    with pytest.raises(SpaceError) as space:
        SearchSpace.from_dict(spec["tweaks"])
    assert str(space.value).startswith("2 problems:"), "a space's problems together, as a SpaceError"


def test_a_spec_naming_no_pruner_gets_the_learned_one_which_waits_a_quarter_of_the_steps() -> None:
    import optuna

    from autotweak.curves import LearnedCurvePruner
    from autotweak.spec._components import build_pruner

    spec = base_spec(metric={"name": "loss", "direction": "minimize", "steps": 8})
    del spec["pruner"]
    exp = Experiment.from_dict(spec)
    assert exp.pruner.name == "learned"
    pruner = build_pruner(exp.pruner, exp.metric)
    assert isinstance(pruner, LearnedCurvePruner)
    # No curve model fits 'x': the median rule decides, but not before step 2 of 8 (a quarter).
    study = optuna.create_study(direction="minimize", pruner=pruner)
    for _ in range(5):
        trial = study.ask({"x": optuna.distributions.FloatDistribution(-5, 5)})
        for step in range(1, 9):
            trial.report(0.0, step)
        study.tell(trial, 0.0)
    laggard = study.ask({"x": optuna.distributions.FloatDistribution(-5, 5)})
    laggard.report(10.0, 1)
    assert not laggard.should_prune()  # Optuna's MedianPruner() stops it here
    laggard.report(10.0, 2)
    assert laggard.should_prune()


def test_a_model_file_found_neither_next_to_the_spec_nor_here_is_named_where_it_was_looked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "lab"
    folder.mkdir()
    (folder / "lab.meta.npz").write_bytes(b"")  # the file meant; never read here
    spec = base_spec(tweaks="hgb", base={}, sampler={"name": "meta", "args": {"model": "lab.meta.np"}})
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump(spec))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as caught:
        load_experiment(path, check_objective=False)
    assert str(caught.value) == (
        f"{path}: 'sampler.args.model' must be 'auto', 'none' or a meta-model file, next to the spec "
        f"({folder / 'lab.meta.np'}) or in the working directory ({tmp_path / 'lab.meta.np'}), and neither "
        "holds it (did you mean 'lab.meta.npz'?); fit one with `autotweak meta fit`, got 'lab.meta.np'."
    )


def test_a_grace_period_under_twice_the_heartbeat_interval_is_taken_with_one_warning(caplog):
    """Refused, a study stored so could no longer be joined or resumed; one late heartbeat is the risk."""
    spec = base_spec(execution={"heartbeat_interval": 7, "grace_period": 13})
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        assert Experiment.from_dict(spec).execution.grace_period == 13
        Experiment.from_dict(spec)  # a second read of the same spec (a worker's, a resume's): not again
    [said] = [r.getMessage() for r in caplog.records if "grace_period" in r.getMessage()]
    assert said.startswith("execution.grace_period 13 is under twice heartbeat_interval (2 x 7 = 14)")


def test_a_missing_aws_section_shows_a_minimal_one_that_parses_and_where_the_rest_is_described(
    tmp_path: Path,
) -> None:
    """`--executor aws-spot` without `execution.aws`: the error shows what to add and where to read."""
    from autotweak._validation import Where
    from autotweak.spec._parts import AwsSpot

    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(base_spec()))
    experiment = load_experiment(path)
    with pytest.raises(SpecError) as refused:
        AwsSpot.of(experiment.execution, Where(experiment.source, "execution.aws"))
    said = str(refused.value)
    assert said.startswith(
        f"{path}: 'execution.aws' is required by the aws-spot executor: add at least `aws: {{"
    )
    section = re.search(r"README\.md, section '([^']+)'", said)
    assert section is not None, said
    assert f"\n## {section[1]}\n" in (REPO / "README.md").read_text(encoding="utf-8")
    shown = re.search(r"`(aws: \{.*?\})` under `execution:`", said)
    assert shown is not None, said
    spec = base_spec(execution={"workers": 2, **yaml.safe_load(shown[1])})
    path.write_text(yaml.safe_dump(spec))
    added = load_experiment(path)
    settings = AwsSpot.of(added.execution, Where(added.source, "execution.aws"))
    assert settings.image_id.startswith("ami-") and settings.instance_types == ("g4dn.xlarge",)
