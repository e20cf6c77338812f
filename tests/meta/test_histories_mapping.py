"""Recorded params mapped onto a search space: parsing, renames, gaps, ranges, choices."""

from __future__ import annotations

import numpy as np
import pytest

from autotweak.meta import HistoryError, ParamMapper, map_params
from autotweak.meta._skips import HintedReason
from autotweak.space import SearchSpace, load_space

SPACE = SearchSpace.from_dict(
    {
        "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        "width": {"type": "int", "low": 16, "high": 512, "log": True},
        "depth": {"type": "int", "low": 0, "high": 10, "step": 2},
        "dropout": {"type": "float", "low": 0.0, "high": 0.5},
        "batch_size": {"type": "categorical", "choices": [32, 64, 128]},
        "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
        "momentum": {"type": "float", "low": 0.0, "high": 0.99, "when": {"optimizer": "sgd"}},
        "amsgrad": {"type": "categorical", "choices": [True, False], "when": {"optimizer": "adam"}},
        "epochs": {"type": "fixed", "value": 30},
    }
)
GOOD = {
    "learning_rate": "0.01",
    "width": "64",
    "depth": "4",
    "dropout": "0.1",
    "batch_size": "64",
    "optimizer": "adam",
    "amsgrad": "True",
}
EXPECTED = {
    "learning_rate": 0.01,
    "width": 64,
    "depth": 4,
    "dropout": 0.1,
    "batch_size": 64,
    "optimizer": "adam",
    "amsgrad": True,
    "epochs": 30,
}


def test_strings_are_parsed_to_each_params_type() -> None:
    config, reason = map_params(GOOD, SPACE)
    assert reason is None and config == EXPECTED
    assert config is not None and type(config["width"]) is int and type(config["learning_rate"]) is float


def test_native_and_numpy_values_and_odd_number_formats() -> None:
    raw = {**GOOD, "learning_rate": np.float64(1e-2), "width": "64.0", "depth": np.int64(4), "dropout": 0}
    raw |= {"batch_size": 64.0, "amsgrad": "true"}
    config, reason = map_params(raw, SPACE)
    assert reason is None and config == EXPECTED | {"dropout": 0.0}


def test_renames_and_automatic_aliases() -> None:
    raw = {k: v for k, v in GOOD.items() if k not in ("learning_rate", "batch_size")}
    raw |= {"lr": "0.01", "Batch-Size": "64"}
    assert map_params(raw, SPACE, renames={"lr": "learning_rate"}) == (EXPECTED, None)
    assert map_params(raw | {"lr": "0.01", "LearningRate": "0.02"}, SPACE)[0] == EXPECTED | {
        "learning_rate": 0.02
    }
    assert map_params(GOOD | {"learning-rate": "0.010"}, SPACE) == (EXPECTED, None), "the same value twice"
    twice = "param 'learning_rate' is recorded twice (under two names) with different values"
    assert map_params(GOOD | {"learning-rate": "0.05"}, SPACE) == (None, twice)
    assert map_params(GOOD | {"lr": "0.05"}, SPACE, renames={"lr": "learning_rate"}) == (None, twice)


def test_a_name_not_in_the_space_is_noted_with_the_rename_it_may_need() -> None:
    mapper = ParamMapper(SPACE)
    raw = {k: v for k, v in GOOD.items() if k != "learning_rate"} | {"lr": "0.01", "seed": "3"}
    assert mapper.map(GOOD | {"lr": "0.01", "seed": "3"}) == (EXPECTED, None)
    assert dict(mapper.notes) == {
        "param 'lr' is not in the space (ignored; the space's 'learning_rate'? renames={'lr': "
        "'learning_rate'} (Python) or --rename lr=learning_rate (CLI))": 1,
        "param 'seed' is not in the space (ignored)": 1,
    }
    skip = "param 'learning_rate' is missing"
    rename = "renames={'lr': 'learning_rate'} (Python) or --rename lr=learning_rate (CLI)"
    config, reason = mapper.map(raw)
    assert config is None and reason == f"{skip} (recorded as 'lr'? {rename})"
    assert isinstance(reason, HintedReason) and reason.rule == skip, "counted under its rule"
    assert mapper.map({k: v for k, v in raw.items() if k != "lr"}) == (None, skip), "no hint: no 'lr'"


def test_a_skipped_record_makes_no_note_and_a_kept_one_counts_each_time() -> None:
    """Notes are about kept records, one count per record: a skipped one is counted by its reason only."""
    mapper = ParamMapper(SPACE)
    lacking = {k: v for k, v in GOOD.items() if k != "dropout"} | {"seed": "3"}
    for _ in range(3):
        assert mapper.map(lacking) == (None, "param 'dropout' is missing")
    assert dict(mapper.notes) == {}
    for seed in ("1", "2", "1"):  # the third maps from the memo: it counts as well
        assert mapper.map(GOOD | {"seed": seed}) == (EXPECTED, None)
    assert dict(mapper.notes) == {"param 'seed' is not in the space (ignored)": 3}


def test_an_abbreviated_or_ambiguous_name_gets_its_rename_hint() -> None:
    space = SearchSpace.from_dict(
        {
            "l2_regularization": {"type": "float", "low": 0.0, "high": 1.0},
            "learning_rate": {"type": "float", "low": 0.01, "high": 1.0},
            "batch_size": {"type": "int", "low": 8, "high": 256},
            "beam_size": {"type": "int", "low": 1, "high": 8},
            "max_leaf_nodes": {"type": "int", "low": 2, "high": 256},
        }
    )
    mapper = ParamMapper(space)
    config = {"l2_regularization": "0.1", "learning_rate": "0.1", "batch_size": 32, "beam_size": 4}
    extra = {"l2_reg": "0.1", "lr": "0.1", "bs": "8", "max_leaf_node": "31"}  # 8: a batch or beam size
    assert mapper.map(config | {"max_leaf_nodes": 31} | extra)[0] is not None
    assert dict(mapper.notes) == {
        "param 'l2_reg' is not in the space (ignored; the space's 'l2_regularization'? "
        "renames={'l2_reg': 'l2_regularization'} (Python) or --rename l2_reg=l2_regularization (CLI))": 1,
        "param 'lr' is not in the space (ignored; the space's 'learning_rate'? "
        "renames={'lr': 'learning_rate'} (Python) or --rename lr=learning_rate (CLI))": 1,
        "param 'bs' is not in the space (ignored; the space's 'batch_size' or 'beam_size'? "
        "renames={'bs': NAME} (Python) or --rename bs=NAME (CLI))": 1,
        "param 'max_leaf_node' is not in the space (ignored; the space's 'max_leaf_nodes'? "
        "renames={'max_leaf_node': 'max_leaf_nodes'} (Python) "
        "or --rename max_leaf_node=max_leaf_nodes (CLI))": 1,
    }


def test_a_rename_is_hinted_only_where_the_recorded_value_fits_the_param() -> None:
    """``bs`` reads as batch_size or beam_size by its name; its value says which it can be."""
    space = SearchSpace.from_dict(
        {
            "batch_size": {"type": "categorical", "choices": [32, 64, 128]},
            "beam_size": {"type": "int", "low": 1, "high": 8},
            "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        }
    )
    both = {"batch_size": 64, "beam_size": 4, "learning_rate": "0.01"}
    mapper = ParamMapper(space)
    for bs in ("64", "4", "48"):
        assert mapper.map(both | {"bs": bs})[0] is not None
    mapper.map(both | {"lr": "adam"})
    assert dict(mapper.notes) == {
        "param 'bs' is not in the space (ignored; the space's 'batch_size'? renames={'bs': 'batch_size'} "
        "(Python) or --rename bs=batch_size (CLI))": 1,
        "param 'bs' is not in the space (ignored; the space's 'beam_size'? renames={'bs': 'beam_size'} "
        "(Python) or --rename bs=beam_size (CLI))": 1,
        "param 'bs' is not in the space (ignored)": 1,  # 48: neither a choice nor in 1..8
        "param 'lr' is not in the space (ignored)": 1,  # text: no learning rate
    }
    no_beam = {"batch_size": 64, "learning_rate": "0.01", "bs": "64"}
    assert mapper.map(no_beam) == (None, "param 'beam_size' is missing"), "64 is no beam size"
    _, reason = mapper.map({"beam_size": 4, "learning_rate": "0.01", "bs": "64"})
    assert reason == (
        "param 'batch_size' is missing (recorded as 'bs'? renames={'bs': 'batch_size'} (Python) "
        "or --rename bs=batch_size (CLI))"
    )


def test_a_learning_rate_is_not_hinted_as_an_l1_ratio_or_an_l2_regularization() -> None:
    """``lr`` has the initials of ``l1_ratio`` and ``l2_regularization`` only with their digits dropped."""
    linear = ParamMapper(load_space("linear"))
    assert linear.map({"C": "1.0", "l1_ratio": "0.5", "class_weight": "None", "lr": "0.01"})[0] is not None
    assert dict(linear.notes) == {"param 'lr' is not in the space (ignored)": 1}
    assert linear.map({"l1_ratio": "0.5", "lr": "0.01"}) == (None, "param 'C' is missing")
    hgb = ParamMapper(load_space("hgb"))
    _, reason = hgb.map({"lr": "0.1", "max_leaf_nodes": "31", "min_samples_leaf": "20"})
    assert reason == (
        "param 'learning_rate' is missing (recorded as 'lr'? renames={'lr': 'learning_rate'} (Python) "
        "or --rename lr=learning_rate (CLI))"
    )


def test_renames_must_name_params_of_the_space() -> None:
    with pytest.raises(
        HistoryError,
        match=r"'renames' must map recorded names to parameters of the space .* got \{'lr': 'rate'\}",
    ):
        ParamMapper(SPACE, renames={"lr": "rate"})


def test_missing_params_are_filled_from_fixed_or_base_else_skipped() -> None:
    no_epochs = GOOD
    assert map_params(no_epochs, SPACE)[0] == EXPECTED
    lacking = {k: v for k, v in GOOD.items() if k != "dropout"}
    assert map_params(lacking, SPACE) == (None, "param 'dropout' is missing")
    mapper = ParamMapper(SPACE, base={"dropout": 0.2})
    assert mapper.map(lacking) == (EXPECTED | {"dropout": 0.2}, None)
    assert dict(mapper.notes) == {"param 'dropout' filled from the base config": 1}


def test_conditional_params_only_when_active() -> None:
    sgd = {k: v for k, v in GOOD.items() if k != "amsgrad"} | {"optimizer": "sgd", "momentum": "0.9"}
    config, _ = map_params(sgd, SPACE)
    assert config is not None and config["momentum"] == 0.9 and "amsgrad" not in config
    assert map_params(sgd | {"amsgrad": "False"}, SPACE)[0] == config  # inactive: dropped
    assert (
        map_params({k: v for k, v in sgd.items() if k != "momentum"}, SPACE)[1]
        == "param 'momentum' is missing"
    )


def test_out_of_range_clipped_within_tolerance_else_skipped() -> None:
    mapper = ParamMapper(SPACE)
    assert mapper.map(GOOD | {"dropout": "0.54"}) == (EXPECTED | {"dropout": 0.5}, None)
    assert mapper.map(GOOD | {"dropout": "-0.01"}) == (EXPECTED | {"dropout": 0.0}, None)
    assert mapper.map(GOOD | {"learning_rate": "0.15"}) == (
        EXPECTED | {"learning_rate": 0.1},
        None,
    )  # log scale
    assert mapper.map(GOOD | {"dropout": "5.0"}) == (None, "param 'dropout' = 5.0 out of range [0.0, 0.5]")
    assert mapper.map(GOOD | {"width": "4"}) == (None, "param 'width' = 4 out of range [16, 512]")
    assert mapper.map(GOOD | {"learning_rate": "-1"}) == (
        None,
        "param 'learning_rate' = -1.0 out of range [0.0001, 0.1]",
    )
    assert dict(mapper.notes) == {
        "param 'dropout' clipped into range": 2,
        "param 'learning_rate' clipped into range": 1,
    }


def test_a_float_log_param_recorded_as_zero_is_its_low_end() -> None:
    """weight_decay=0 and l2_regularization=0 are library defaults: "none", not a bad record."""
    mapper = ParamMapper(SPACE)
    assert mapper.map(GOOD | {"learning_rate": "0"}) == (EXPECTED | {"learning_rate": 1e-4}, None)
    assert mapper.map(GOOD | {"learning_rate": 0.0}) == (EXPECTED | {"learning_rate": 1e-4}, None)
    assert mapper.map(GOOD | {"width": "0"}) == (None, "param 'width' = 0 out of range [16, 512]"), "an int"
    assert mapper.map(GOOD | {"dropout": "-0.2"})[0] is None, "a linear range keeps its rule"
    assert dict(mapper.notes) == {"param 'learning_rate' = 0 taken as its log range's low end": 2}


def test_ints_off_their_step_move_to_it_and_fractions_are_refused() -> None:
    mapper = ParamMapper(SPACE)
    assert mapper.map(GOOD | {"depth": "5"}) == (EXPECTED | {"depth": 6}, None)
    assert mapper.map(GOOD | {"width": "64.5"}) == (None, "param 'width' = 64.5 must be an integer")
    assert dict(mapper.notes) == {"param 'depth' moved to its step": 1}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"batch_size": "48"}, "param 'batch_size' = '48' is not one of the choices [32, 64, 128]"),
        ({"optimizer": "Adam"}, "param 'optimizer' = 'Adam' is not one of the choices ['adam', 'sgd']"),
        ({"amsgrad": "maybe"}, "param 'amsgrad' = 'maybe' is not one of the choices [True, False]"),
        ({"dropout": "high"}, "param 'dropout' = 'high' must be a number"),
        ({"dropout": "nan"}, "param 'dropout' = nan must be a finite number"),
        ({"dropout": True}, "param 'dropout' = True must be a number"),
        ({"width": [64]}, "param 'width' = [64] must be a number"),
        ({"epochs": "10"}, "param 'epochs' = '10' is not the space's fixed value 30"),
    ],
)
def test_bad_values_skip_the_record_with_a_reason(change: dict[str, object], reason: str) -> None:
    assert map_params(GOOD | change, SPACE) == (None, reason)


def test_a_fixed_param_recorded_with_its_value_is_kept() -> None:
    assert map_params(GOOD | {"epochs": "30"}, SPACE) == (EXPECTED, None)


def test_extra_params_are_ignored_and_noted_per_kept_record() -> None:
    mapper = ParamMapper(SPACE)
    for _ in range(3):
        assert mapper.map(GOOD | {"seed": "1", "run_name": "x"}) == (EXPECTED, None)
    assert dict(mapper.notes) == {
        "param 'seed' is not in the space (ignored)": 3,
        "param 'run_name' is not in the space (ignored)": 3,
    }


class _Weird:
    def __str__(self) -> str:
        raise RuntimeError("no text")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no comparison")

    __hash__ = object.__hash__


def test_a_hostile_record_never_crashes() -> None:
    config, reason = map_params(GOOD | {"optimizer": _Weird()}, SPACE)
    assert config is None and reason == "params cannot be read: RuntimeError"


def test_repeated_records_count_their_changes_each_time_and_types_stay_apart() -> None:
    mapper = ParamMapper(SPACE)
    for _ in range(3):
        assert mapper.map(GOOD | {"dropout": 0.52}) == (EXPECTED | {"dropout": 0.5}, None)
    assert mapper.map(GOOD | {"dropout": 0.52, "width": "4"})[0] is None  # skipped: its clip is not noted
    assert dict(mapper.notes) == {"param 'dropout' clipped into range": 3}
    assert mapper.map(GOOD | {"depth": 0})[0] == EXPECTED | {"depth": 0}
    assert mapper.map(GOOD | {"depth": False}) == (None, "param 'depth' = False must be a number")
    first, _ = mapper.map(GOOD)
    assert first is not None
    first["width"] = 0  # a returned config is the caller's own
    assert mapper.map(GOOD) == (EXPECTED, None)


def test_a_boolean_choice_recorded_as_one_or_zero_is_read_as_the_text_one_is() -> None:
    for recorded, expected in ((1, True), ("1", True), (0, False), (np.int64(0), False)):
        config, reason = map_params(GOOD | {"amsgrad": recorded}, SPACE)
        assert reason is None and config is not None and config["amsgrad"] is expected, recorded
    assert (
        map_params(GOOD | {"amsgrad": 2}, SPACE)[1]
        == "param 'amsgrad' = 2 is not one of the choices [True, False]"
    )
