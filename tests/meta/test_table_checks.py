"""Tables: a space inferred from every row, skips grouped by rule, wrong arguments refused by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from autotweak.meta import HistoryError, SkipReport, read_table
from autotweak.space import SearchSpace

SPACE = SearchSpace.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0}}, name="unit")
SPACE_YAML = "params:\n  x: {type: float, low: 0.0, high: 1.0}\n"


def _own_benchmark() -> pd.DataFrame:
    """Two tasks that use config_ids 0-5 for different values of C."""
    grid = {"p": [1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0], "q": [0.5, 1.0, 2.0, 3.0, 4.0, 5.0]}
    rows = [
        {"task": task, "config_id": cid, "step": 1, "val_score": 0.1 * cid, "C": c}
        for task, cs in grid.items()
        for cid, c in enumerate(cs)
    ]
    return pd.DataFrame(rows)


def test_a_benchmark_table_with_own_config_ids_infers_its_space_from_every_row() -> None:
    histories = read_table(_own_benchmark())
    assert histories.skipped.total == 0 and [len(t.trials) for t in histories.tasks] == [6, 6]
    param = histories.tasks[0].trials[0].params
    assert param == {"C": 1e-3}
    assert histories.tasks[1].trials[0].params == {"C": 0.5}


def test_skips_of_one_rule_are_counted_together_with_an_example_value() -> None:
    space = SearchSpace.from_dict({"C": {"type": "float", "low": 0.5, "high": 5.0}})
    histories = read_table(_own_benchmark(), space=space)
    rule = "param 'C' out of range [0.5, 5.0]"
    assert dict(histories.skipped.counts) == {rule: 4}  # 0.001, 0.01, 10, 100 (0.1 is clipped)
    assert histories.skipped.summary() == (
        f"4 records skipped: 4 x {rule} (e.g. 0.001 at table:frame#p/0); "
        "kept with changes: 1 x param 'C' clipped into range"
    )


def test_a_value_reason_reads_as_the_whole_sentence_and_merges_by_rule() -> None:
    from autotweak.meta._skips import ValueReason

    one, two = SkipReport(), SkipReport()
    one.add(ValueReason("param 'C'", 9.0, "out of range [0.5, 5.0]"), "a#1")
    two.add(ValueReason("param 'C'", 7.0, "out of range [0.5, 5.0]"), "b#1")
    merged = one.merge(two)
    assert dict(merged.counts) == {"param 'C' out of range [0.5, 5.0]": 2}
    assert merged.summary() == "2 records skipped: 2 x param 'C' out of range [0.5, 5.0] (e.g. 9.0 at a#1)"
    assert ValueReason("param 'C'", 9.0, "out of range") == "param 'C' = 9.0 out of range"


def test_a_hinted_reason_is_counted_with_its_rule_unhinted_and_keeps_its_hint_through_a_merge() -> None:
    from autotweak.meta._skips import HintedReason

    rule = "task key 'datset' is neither a tag nor a param of the run"
    one, two = SkipReport(), SkipReport()
    one.add(rule, "a#1")
    two.add(HintedReason(rule, "did you mean 'dataset'"), "b#1")
    two.add(rule, "b#2")
    merged = one.merge(two)
    assert dict(merged.counts) == {rule: 3}
    hinted = f"{rule} (did you mean 'dataset' in 1 of 3 records?)"
    assert merged.summary() == f"3 records skipped: 3 x {hinted} (e.g. a#1)"
    alone = SkipReport()
    alone.add(HintedReason(rule, "did you mean 'dataset'"), "c#1")
    assert alone.summary() == f"1 record skipped: 1 x {rule} (did you mean 'dataset'?) (e.g. c#1)"


def test_a_hinted_note_is_one_line_per_rule_with_the_hint_most_records_give() -> None:
    """A rename hinted for some records of a recorded name and not for others: one line, with the count."""
    from autotweak.meta._skips import HintedReason

    rule = "param 'lr' is not in the space (ignored)"
    lr = HintedReason(rule, "the space's 'learning_rate'", "renames={'lr': 'learning_rate'}")
    one, two = SkipReport(), SkipReport()
    one.note_all({lr: 8, rule: 2})
    two.note(lr, 4)
    two.note(rule)
    two.note(HintedReason(rule, "the space's 'l1_ratio'", "renames={'lr': 'l1_ratio'}"), 2)
    merged = one.merge(two)
    assert dict(merged.notes) == {rule: 17}
    assert merged.summary() == (
        "no record skipped; kept with changes: 17 x param 'lr' is not in the space (ignored; the "
        "space's 'learning_rate' in 12 of 17 records? renames={'lr': 'learning_rate'})"
    )
    every = SkipReport()
    every.note(lr, 8)
    assert every.summary() == (
        "no record skipped; kept with changes: 8 x param 'lr' is not in the space (ignored; the "
        "space's 'learning_rate'? renames={'lr': 'learning_rate'})"
    )


@pytest.mark.parametrize(
    ("source", "shown"), [(None, "NoneType None"), ([1, 2], "list [1, 2]"), (3.5, "float 3.5")]
)
def test_read_table_refuses_a_source_that_is_no_path_nor_frame(source: Any, shown: str) -> None:
    with pytest.raises(HistoryError) as info:
        read_table(source)
    assert str(info.value) == (
        f"'source' must be the path of a .parquet or .csv file or a pandas DataFrame, got {shown}."
    )


def test_read_table_takes_a_space_file_or_name_and_refuses_other_spaces(tmp_path: Path) -> None:
    (tmp_path / "unit.yaml").write_text(SPACE_YAML)
    frame = pd.DataFrame({"task": ["a", "a"], "trial": [0, 1], "value": [0.1, 0.2], "param.x": [0.2, 0.4]})
    assert read_table(frame, space=tmp_path / "unit.yaml").n_trials == 2
    assert read_table(frame, space=str(tmp_path / "unit.yaml")).n_trials == 2
    with pytest.raises(HistoryError, match=r"'space' must be a SearchSpace, .* got dict"):
        read_table(frame, space={"x": 1})  # type: ignore[arg-type]


def test_a_rename_hinted_for_some_records_of_a_name_is_one_line_with_their_count() -> None:
    """``lr`` recorded as 0.01 in 3 trials and as 'adam' in 2: one note, one skip, each with 3 of 5."""
    lr = ["0.01", "0.02", "adam", "0.03", "adam"]
    rows = [{"task": "t", "trial": i, "value": 0.1 * i, "param.lr": v} for i, v in enumerate(lr)]
    rename = "renames={'lr': 'learning_rate'} (Python) or --rename lr=learning_rate (CLI)"
    space = SearchSpace.from_dict({"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1}})

    kept = read_table(pd.DataFrame(rows), space=space, base={"learning_rate": 0.05}).skipped
    rule = "param 'lr' is not in the space (ignored)"
    assert kept.notes == {"param 'learning_rate' filled from the base config": 5, rule: 5}
    assert kept.summary() == (
        "no record skipped; kept with changes: 5 x param 'learning_rate' filled from the base config; "
        "5 x param 'lr' is not in the space "
        f"(ignored; the space's 'learning_rate' in 3 of 5 records? {rename})"
    )

    skipped = read_table(pd.DataFrame(rows), space=space).skipped
    assert skipped.counts == {"param 'learning_rate' is missing": 5}
    assert skipped.summary() == (
        "5 records skipped: 5 x param 'learning_rate' is missing (recorded as 'lr' in 3 of 5 records? "
        f"{rename}) (e.g. table:frame#t/0)"
    )


def test_a_recorded_name_that_fits_two_params_in_many_records_hints_both_in_one_line() -> None:
    """``bs`` recorded as 64 in 10 records (a batch size) and as 4 in 5 (a beam size): both renames said."""
    bs = [64] * 10 + [4] * 5
    rows = [{"task": "t", "trial": i, "value": 0.1 * i, "param.bs": v} for i, v in enumerate(bs)]
    space = SearchSpace.from_dict(
        {
            "batch_size": {"type": "int", "low": 32, "high": 256},
            "beam_size": {"type": "int", "low": 1, "high": 8},
        }
    )
    skipped = read_table(pd.DataFrame(rows), space=space, base={"batch_size": 32, "beam_size": 2}).skipped
    rename = "renames={{'bs': '{0}'}} (Python) or --rename bs={0} (CLI)"
    [ignored] = [
        line for line in skipped.summary().split("; kept with changes: ")[1].split(" x ") if "'bs'" in line
    ]
    assert ignored == (
        "param 'bs' is not in the space (ignored; the space's 'batch_size' in 10 of 15 records? "
        f"{rename.format('batch_size')}; or the space's 'beam_size' in 5 of 15 records? "
        f"{rename.format('beam_size')})"
    )
    few = read_table(pd.DataFrame(rows[:14]), space=space, base={"batch_size": 32, "beam_size": 2})
    assert "'beam_size' in 4 of 14" in few.skipped.summary()  # 4 of 14: still a fifth or more
    rare = [{**row, "param.bs": 64} for row in rows[:12]] + rows[-2:]  # beam size in 2 of 14 only
    said = read_table(
        pd.DataFrame(rare), space=space, base={"batch_size": 32, "beam_size": 2}
    ).skipped.summary()
    assert "'batch_size' in 12 of 14 records?" in said and "beam_size' in" not in said
