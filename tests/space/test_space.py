from __future__ import annotations

import math
import re

import optuna
import pytest

from autotweak.exceptions import SpaceError
from autotweak.space import (
    CategoricalParam,
    FixedParam,
    FloatParam,
    IntParam,
    SearchSpace,
    available_spaces,
    load_space,
)

COND = {
    "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
    "momentum": {"type": "float", "low": 0.5, "high": 0.99, "when": {"optimizer": "sgd"}},
    "epochs": 10,
}


def test_parses_every_kind():
    space = SearchSpace.from_dict(
        {
            "lr": {"type": "float", "low": "1e-4", "high": 0.1, "log": True},
            "units": {"type": "int", "low": 16, "high": 512, "log": True},
            "drop": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
            "act": {"type": "categorical", "choices": ["relu", "gelu"]},
            "epochs": {"type": "fixed", "value": 30},
            "seed": 7,
        }
    )
    assert isinstance(space["lr"], FloatParam) and space["lr"].low == pytest.approx(1e-4)
    assert isinstance(space["units"], IntParam) and space["units"].log
    assert isinstance(space["act"], CategoricalParam)
    assert isinstance(space["epochs"], FixedParam) and space["epochs"].value == 30
    assert space["seed"].value == 7
    assert [p.name for p in space.tunable] == ["lr", "units", "drop", "act"]


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"type": "float", "low": 1.0, "high": 0.5}, "'x' must satisfy low <= high"),
        ({"type": "float", "low": 0.0, "high": 1.0, "log": True}, "'x.low' must be > 0 when log is true"),
        ({"type": "float", "low": 0.1, "high": 1.0, "log": True, "step": 0.1}, "'x.step' cannot be combined"),
        ({"type": "float", "low": 0.0, "hihg": 1.0}, "did you mean 'high'"),
        ({"type": "float", "low": 0.0}, "'x.high' is required"),
        ({"type": "double", "low": 0, "high": 1}, "'x.type' must be one of float, int, categorical, fixed"),
        ({"type": "int", "low": 0.5, "high": 3}, "'x.low' must be an integer"),
        ({"type": "int", "low": 0, "high": 3, "step": 0}, "'x.step' must be an integer >= 1"),
        ({"type": "float", "low": "abc", "high": 1}, "'x.low' must be a number, got 'abc'"),
        ({"type": "categorical", "choices": []}, "'x.choices' must be a non-empty list"),
        ({"type": "categorical", "choices": [1, 1]}, "'x.choices' must not repeat a value"),
        ({"type": "categorical", "choices": [[1, 2]]}, "'x.choices[0]' must be null, a boolean"),
        ({"type": "fixed"}, "'x.value' is required"),
        ({"type": "float", "low": 0, "high": 1, "log": "yes"}, "'x.log' must be true or false"),
    ],
)
def test_bad_parameter_names_field_and_rule(definition, message):
    with pytest.raises(SpaceError, match=re.escape(message)):
        SearchSpace.from_dict({"x": definition})


def test_conditional_parameters_are_only_suggested_under_their_parent():
    space = SearchSpace.from_dict(COND)
    seen = set()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        trial = study.ask()
        config = space.suggest(trial)
        seen.add(config["optimizer"])
        assert ("momentum" in config) == (config["optimizer"] == "sgd")
        assert config["epochs"] == 10
        study.tell(trial, 0.0)
    assert seen == {"adam", "sgd"}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"m": {"type": "float", "low": 0, "high": 1, "when": {"opt": "sgd"}}},
            r"'m.when' must name a parameter declared before 'm' \(declared before it: none\), got 'opt'\.",
        ),
        (
            {
                "m": {"type": "float", "low": 0, "high": 1, "when": {"opt": "sgd"}},
                "opt": {"type": "categorical", "choices": ["sgd"]},
            },
            "got 'opt', which is declared after it",
        ),
        (
            {
                "opt": {"type": "categorical", "choices": ["adam", "sgd"]},
                "m": {"type": "float", "low": 0, "high": 1, "when": {"opt": "rmsprop"}},
            },
            r"'m.when.opt' must be choices of 'opt' \(\['adam', 'sgd'\]\), got \['rmsprop'\]",
        ),
        (
            {"m": {"type": "float", "low": 0, "high": 1, "when": {"a": 1, "b": 2}}},
            "must name exactly one parent",
        ),
    ],
)
def test_bad_conditions(params, message):
    with pytest.raises(SpaceError, match=message):
        SearchSpace.from_dict(params)


def test_from_unit_follows_the_benchmark_mapping():
    space = load_space("mlp")
    u = [0.25, 0.5, 0.3, 0.9, 0.4, 0.6]
    config = space.from_unit(u)
    assert config["lr"] == pytest.approx(1e-4 * (1e-1 / 1e-4) ** 0.25)
    assert config["weight_decay"] == pytest.approx(1e-6 * (1e-2 / 1e-6) ** 0.5)
    assert config["width"] == math.floor(16 * (512 / 16) ** 0.3 + 0.5)
    assert config["depth"] == math.floor(1 + 3 * 0.9 + 0.5)
    assert config["dropout"] == pytest.approx(0.2)
    assert config["batch_size"] == [32, 64, 128, 256][min(int(0.6 * 4), 3)]
    assert space.from_unit([1.0] * 6)["batch_size"] == 256


def test_to_unit_inverts_from_unit_for_continuous_dimensions():
    space = load_space("hgb")
    u = [0.1, 0.2, 0.3, 0.4, 0.5]
    back = space.to_unit(space.from_unit(u))
    assert back[0] == pytest.approx(0.1)
    assert back[3] == pytest.approx(0.4)
    assert back[4] == pytest.approx(0.5)


def test_from_unit_refuses_wrong_dimension():
    with pytest.raises(SpaceError, match="one coordinate per tunable parameter \\(5\\), got 2"):
        load_space("hgb").from_unit([0.1, 0.2])


def test_extend_overrides_drops_and_adds():
    space = load_space("mlp").extend(
        params={"lr": {"high": 0.01}, "epochs": {"type": "int", "low": 5, "high": 50}},
        drop=["dropout"],
    )
    assert space["lr"].high == 0.01 and space["lr"].log
    assert "dropout" not in space and "epochs" in space


def test_extend_refuses_unknown_drop_and_orphaned_children():
    with pytest.raises(SpaceError, match=r"'drop\[0\]' must name a parameter of the space"):
        load_space("mlp").extend(drop=["dropuot"])
    with pytest.raises(SpaceError, match="cannot drop a parent of conditional parameters"):
        SearchSpace.from_dict(COND).extend(drop=["optimizer"])


def test_extend_refuses_an_override_of_a_parameter_it_lacks():
    """A partial override (no 'type') of an unknown name is a typo, not a new parameter."""
    message = (
        "'params.max_featurez' is not a parameter of 'hgb' (did you mean 'max_features'?); "
        "a new parameter needs 'type'"
    )
    with pytest.raises(SpaceError, match=re.escape(message)):
        load_space("hgb").extend(params={"max_featurez": {"high": 0.9}})
    with pytest.raises(
        SpaceError, match=re.escape("'params.dropout' is not a parameter of 'mlp' (it is dropped)")
    ):
        load_space("mlp").extend(params={"dropout": {"high": 0.3}}, drop=["dropout"])
    added = load_space("hgb").extend(params={"max_featurez": {"type": "float", "low": 0.1, "high": 0.9}})
    assert "max_featurez" in added


def test_extend_says_that_an_override_with_type_replaces_the_parameter_whole():
    """``channels: {type: int, high: 32}`` reads as narrowing cnn's channels, but 'type' makes it a new
    definition: the error says so instead of only that 'low' is missing."""
    message = (
        "'params.channels' replaces the parameter 'channels' of 'cnn' whole when it gives 'type', so "
        "it must give low too, got {'type': 'int', 'high': 32}; without 'type' it overrides "
        "only the keys it gives."
    )
    with pytest.raises(SpaceError, match=re.escape(message)):
        load_space("cnn").extend(params={"channels": {"type": "int", "high": 32}})
    with pytest.raises(SpaceError, match=r"so it must give choices too, got \{'type': 'categorical'\}"):
        load_space("cnn").extend(params={"optimizer": {"type": "categorical"}})
    whole = load_space("cnn").extend(params={"channels": {"type": "int", "low": 8, "high": 32}})
    assert not whole["channels"].log, "a whole definition keeps nothing of the one it replaces"
    narrowed = load_space("cnn").extend(params={"channels": {"high": 32}})
    assert narrowed["channels"].log and narrowed["channels"].low == 8


def test_grid_values_and_conditional_refusal():
    grid = SearchSpace.from_dict(
        {"a": {"type": "int", "low": 1, "high": 3}, "b": {"type": "categorical", "choices": ["x", "y"]}}
    ).grid(3)
    assert grid == {"a": [1, 2, 3], "b": ["x", "y"]}
    with pytest.raises(SpaceError, match="grid sampler cannot search a space with conditional"):
        SearchSpace.from_dict(COND).grid(3)


@pytest.mark.parametrize("name", sorted(available_spaces()))
def test_every_library_space_loads_and_samples(name):
    space = load_space(name)
    assert space.description, f"space {name} has no description"
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=3))
    for _ in range(6):
        trial = study.ask()
        config = space.suggest(trial)
        assert not space.invalid(config)
        study.tell(trial, float(len(str(config))))
    u = [0.5] * len(space.tunable)
    assert not space.invalid(space.from_unit(u))


@pytest.mark.parametrize("name", ["hgb", "linear"])
def test_scikit_learn_spaces_run_their_estimator_at_every_corner_without_a_deprecation(name):
    """Every config at a corner of the space fits; a parameter scikit-learn deprecates is a failure."""
    import warnings

    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    estimator = {"hgb": HistGradientBoostingClassifier, "linear": LogisticRegression}[name]
    space = load_space(name)
    x, y = load_breast_cancer(return_X_y=True)
    x = StandardScaler().fit_transform(x)[:200]
    corners = [[0.0] * len(space.tunable), [1.0] * len(space.tunable), [0.0, 1.0] * len(space.tunable)]
    for unit in corners:
        config = space.from_unit(unit[: len(space.tunable)])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            warnings.simplefilter("ignore", ConvergenceWarning)
            estimator(**config).fit(x, y[:200])


def test_library_has_the_spaces_the_issue_promises():
    assert {"mlp", "cnn", "hgb", "linear", "transformer_finetune"} <= set(available_spaces())


def test_hgb_and_mlp_match_the_benchmark_families():
    hgb = load_space("hgb")
    assert [(p.name, p.low, p.high, p.log) for p in hgb.tunable] == [
        ("learning_rate", 0.005, 0.5, True),
        ("max_leaf_nodes", 4, 256, True),
        ("min_samples_leaf", 1, 128, True),
        ("l2_regularization", 1e-4, 10.0, True),
        ("max_features", 0.2, 1.0, False),
    ]
    mlp = load_space("mlp")
    assert mlp.names == ["lr", "weight_decay", "width", "depth", "dropout", "batch_size"]
    assert mlp["batch_size"].choices == (32, 64, 128, 256)


def test_unknown_library_name_suggests_the_close_one():
    with pytest.raises(SpaceError, match="did you mean 'mlp'"):
        load_space("mpl")


def test_user_space_folder_and_extends_chain(tmp_path, monkeypatch):
    (tmp_path / "mine.yaml").write_text(
        "name: mine\ndescription: narrowed mlp\nextends: mlp\n"
        "params:\n  lr: {high: 0.001}\ndrop: [batch_size]\n"
    )
    (tmp_path / "loop_a.yaml").write_text("extends: loop_b\n")
    (tmp_path / "loop_b.yaml").write_text("extends: loop_a\n")
    monkeypatch.setenv("AUTOTWEAK_SPACES_PATH", str(tmp_path))
    mine = load_space("mine")
    assert mine["lr"].high == 0.001 and "batch_size" not in mine
    with pytest.raises(SpaceError, match="must not form a cycle"):
        load_space("loop_a")


def test_extends_a_file_next_to_the_file_that_names_it(tmp_path, monkeypatch):
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "parent.yaml").write_text("params:\n  lr: {type: float, low: 0.001, high: 0.1}\n")
    (tmp_path / "spaces" / "child.yaml").write_text("extends: parent.yaml\nparams:\n  lr: {high: 0.01}\n")
    monkeypatch.chdir(tmp_path.parent)  # neither file is in the working directory
    assert load_space(tmp_path / "spaces" / "child.yaml")["lr"].high == 0.01
    assert load_space("parent.yaml", base_dir=tmp_path / "spaces")["lr"].high == 0.1
    (tmp_path / "spaces" / "bad.yaml").write_text("extends: nope.yaml\n")
    with pytest.raises(SpaceError, match=r"bad.yaml: 'extends' must name an existing search space file"):
        load_space(tmp_path / "spaces" / "bad.yaml")


def test_a_space_file_with_bad_yaml_is_one_line_at_the_place(tmp_path):
    from autotweak.exceptions import SpaceError
    from autotweak.space import load_space

    path = tmp_path / "broken.yaml"
    path.write_text("params:\n  x: {type: float, low: 0, high: 1\n")
    with pytest.raises(SpaceError) as info:
        load_space(str(path))
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}:2:6: not valid YAML: ")


def test_inactive_names_the_conditional_parameters_left_off_their_parents_down() -> None:
    """A child of an inactive parameter is inactive too, whatever its own condition's parent says."""
    space = SearchSpace.from_dict(
        {
            "opt": {"type": "categorical", "choices": ["adam", "sgd"]},
            "nesterov": {"type": "categorical", "choices": [True, False], "when": {"opt": "sgd"}},
            "dampening": {"type": "float", "low": 0.0, "high": 0.5, "when": {"nesterov": False}},
            "lr": {"type": "float", "low": 0.001, "high": 0.1},
        }
    )
    assert space.inactive({"opt": "adam", "nesterov": False, "dampening": 0.1}) == ["nesterov", "dampening"]
    assert space.inactive({"opt": "sgd", "nesterov": True}) == ["dampening"]
    assert space.inactive({"opt": "sgd", "nesterov": False}) == []
    assert space.inactive({}) == ["nesterov", "dampening"]


def test_a_condition_on_a_fixed_parameter_reads_its_value_where_the_config_lacks_it() -> None:
    """Optuna's params hold no fixed value: momentum under a fixed optimizer: sgd is active without it."""
    space = SearchSpace.from_dict(
        {
            "optimizer": "sgd",
            "momentum": {"type": "float", "low": 0.5, "high": 0.99, "when": {"optimizer": "sgd"}},
            "lr": {"type": "float", "low": 0.001, "high": 0.1},
        }
    )
    assert space.active({"momentum": 0.9, "lr": 0.01}) == {"optimizer": "sgd", "momentum": 0.9, "lr": 0.01}
    assert space.inactive({"lr": 0.01}) == []
    assert space.invalid({"lr": 0.01}) == ["momentum"], "a missing momentum is missing, fixed parent or not"
    assert space.invalid({"momentum": 0.9, "lr": 0.01}) == []
