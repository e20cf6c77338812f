"""A study's result and summary print as one line: counts, best trial, why it stopped."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path

import autotweak
from autotweak.spec import Experiment


def test_optimize_result_prints_as_the_study_line(
    home: Path, make_experiment: Callable[..., Experiment]
) -> None:
    result = autotweak.optimize(make_experiment(name="printed", budget={"trials": 3}), track=False)
    printed = repr(result)
    assert str(result) == printed and "\n" not in printed and len(printed) < 200, printed
    best = f"best {result.best_value:.6g} (trial {result.summary.best_number})"
    assert re.fullmatch(
        rf"StudyResult\(study 'printed' stopped \([^)]+\): 3 complete; {re.escape(best)}"
        r"(, base config \S+)?; ran 3\)",
        printed,
    ), printed
    assert "best_config" not in printed and "StudySummary(" not in printed


def test_an_ask_tell_summary_prints_counts_and_best(
    home: Path, make_experiment: Callable[..., Experiment]
) -> None:
    with autotweak.Study(make_experiment(name="asked", base={}, budget={"trials": 3}), track=False) as study:
        for value in (2.0, math.nan, 0.5):
            trial = study.ask()
            assert trial is not None
            study.tell(trial, value)
        summary = study.summary
    number = summary.best_number
    assert repr(summary) == f"StudySummary(study 'asked': 2 complete, 1 failed; best 0.5 (trial {number}))"
    assert str(summary) == repr(summary)
