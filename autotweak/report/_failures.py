"""Why trials failed, grouped: the report's section on failures."""

from __future__ import annotations

import re
from collections import defaultdict

import optuna
from optuna.trial import FrozenTrial

from autotweak.engine._study import ATTR, state_of
from autotweak.engine._summary import search_trials
from autotweak.report._sections import Section

__all__ = ["failure_of", "failures_section"]

SHOWN = 8
"""Kinds of failure listed, the most frequent first; the section says how many more there are."""

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_NO_REASON = "no reason recorded"


def failure_of(trial: FrozenTrial) -> str:
    """The reason a trial failed, as recorded, on one line."""
    reason = str(trial.user_attrs.get(ATTR.FAILURE) or _NO_REASON)
    return " ".join(reason.split())


def failures_section(study: optuna.Study) -> Section | None:
    """The search's failed trials grouped by their reason (numbers aside); ``None`` when none failed.

    Example:
        A study whose objective raised for large ``x`` gets one row, however many values
        of ``x`` failed: ``RuntimeError: diverged at x=1.9`` and ``... x=2.3`` are one kind.
    """
    failed = [t for t in search_trials(study.get_trials(deepcopy=False)) if state_of(t) == "failed"]
    if not failed:
        return None
    kinds: dict[str, list[FrozenTrial]] = defaultdict(list)
    for trial in failed:
        kinds[_NUMBER.sub("#", failure_of(trial))].append(trial)
    ranked = sorted(kinds.values(), key=lambda group: (-len(group), group[0].number))
    notes = [
        f"{len(failed)} trial(s) failed, for {len(kinds)} kind(s) of reason (numbers in the reasons "
        "set aside). Each failed trial's MLflow run has the whole reason (tag `autotweak.failure`) "
        "and, where an exception was raised, its traceback (artifact traceback.txt)."
    ]
    if len(ranked) > SHOWN:
        notes.append(f"Shown: the {SHOWN} most frequent kinds; {len(ranked) - SHOWN} more are in the study.")
    rows = [_row(group) for group in ranked[:SHOWN]]
    return Section("Failed trials", notes, ["trials", "reason (first of its kind)", "trial numbers"], rows)


def _row(group: list[FrozenTrial]) -> list[str]:
    numbers = [str(t.number) for t in group]
    shown = ", ".join(numbers[:10]) + (f" and {len(numbers) - 10} more" if len(numbers) > 10 else "")
    reason = failure_of(group[0])
    return [str(len(group)), reason if len(reason) <= 200 else reason[:197] + "...", shown]
