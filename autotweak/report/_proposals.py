"""The meta-learner's proposals and how they scored, read from the study's system attrs.

The meta-learner stores ``autotweak.meta_proposals`` on the Optuna study: a JSON list of
``{"params", "predicted", "uncertainty", "sources": [{"task", "similarity", "score", "measured"}],
"trial_number"}``, where ``trial_number`` is the trial that ran the proposal (``null`` if none
did) and a source's ``measured`` says whether the past task ran the config (``false``: its
surrogate predicted the score; ``null`` or absent, as in records written before it was kept:
unknown).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autotweak.engine._study import ATTR
from autotweak.engine._summary import search_trials
from autotweak.meta import PROPOSALS_ATTR, guard_of
from autotweak.meta._records import GUARD_AFTER
from autotweak.report._sections import Section, fmt

__all__ = [
    "MEASURED_NOTE",
    "PREDICTED",
    "PREDICTED_NOTE",
    "SIMILARITY_NOTE",
    "guard_note",
    "proposals_section",
    "source_text",
]

PREDICTED = "predicted rank (share of configs beaten)"
PREDICTED_NOTE = (
    "Predicted rank: the meta-learner's predicted normalized score, the share of a past task's "
    "configs the proposal is expected to beat (0 to 1, 1 = that task's best; configs that tied "
    "share their average rank), averaged over the past tasks by their weights; ± is its spread "
    "across them. It is a rank, not a value of the metric."
)
SIMILARITY_NOTE = (
    "Similarity: a past task's weight relative to the most similar one's (1.00 for all of them "
    "until the study's results or a task descriptor tell tasks apart)."
)
MEASURED_NOTE = (
    "Score on a past task: 'measured' where that task ran the config (the score is its own rank "
    "there), 'predicted' where it did not (the task's surrogate predicted the score); 'not known "
    "if measured or predicted' where the meta-model file, or the study's record, was written "
    "before autotweak kept which (refit the model with `autotweak meta fit` to tell them apart)."
)

_log = logging.getLogger(__name__)


def proposals_section(study: optuna.Study) -> Section | None:
    """The table of proposals against their trials' values; ``None`` when there are none."""
    proposals = _read(study)
    if not proposals:
        return None
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    scored = sorted((float(t.value) for t in trials.values() if _scored(t)), reverse=maximize)  # type: ignore[arg-type]
    rows = [_row(i, p, trials, scored) for i, p in enumerate(proposals, start=1)]
    notes = [
        f"Rank: where the proposal's actual value falls among the study's {len(scored)} completed "
        "trials (1 = best).",
        PREDICTED_NOTE + " Compare it with the rank column, not with actual.",
        guard_note(study),
        "From past tasks: those that weigh most in the proposal, with their similarity to this "
        "study and the proposal's normalized score on them (1 = that task's best; tied configs "
        "share their average rank, so a task where many configs tied for the best scores them below 1).",
        MEASURED_NOTE,
        SIMILARITY_NOTE,
    ]
    header = ["#", "params", PREDICTED, "actual", "rank", "trial", "from past tasks"]
    return Section("Meta-learner proposals and how they scored", notes, header, rows)


def guard_note(study: optuna.Study) -> str:
    """What the negative-transfer guard decided for ``study``, in one sentence."""
    record = guard_of(study)
    if record is None:
        spec = study.user_attrs.get(ATTR.SPEC) or {}
        args = (spec.get("sampler") or {}).get("args") or {}
        after = int(args.get("guard_after", GUARD_AFTER))
        # the search's results, which the guard judged: not those ``report --ablate`` added since
        results = sum(t.state == TrialState.COMPLETE for t in search_trials(study.get_trials(deepcopy=False)))
        if results < after:
            return (
                f"Negative-transfer guard: not checked (it judges the past once {after} results are in; "
                f"this study has {results})."
            )
        return (
            "Negative-transfer guard: did not trip (the past ranked this study's results better than chance)."
        )
    n = record.get("results")
    pairs = n * (n - 1) // 2 if isinstance(n, int) and n > 1 else 0
    step = f"; on {n} results one pair out of order moves tau by {2 / pairs:.2g}" if pairs else ""
    return (
        f"Negative-transfer guard: tripped after {n} results: the order the prior predicted for "
        "them (the past tasks as weighted before any result of this study, the base config included) "
        f"agreed with their actual order no better than its threshold (Kendall's tau {record.get('tau')}, "
        f"below {record.get('threshold')}{step}); the study went on with the cold sampler, which no "
        "longer sees the proposed trials. The predicted ranks in the table are the later ones, "
        "reweighted by the study's results."
    )


def _read(study: optuna.Study) -> list[dict[str, Any]]:
    # Optuna 5 keeps study system attrs in the storage only (no ``Study.system_attrs``).
    raw = study._storage.get_study_system_attrs(study._study_id).get(PROPOSALS_ATTR)
    if raw is None:
        return []
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        _log.warning("study '%s': %s is not valid JSON; not shown", study.study_name, PROPOSALS_ATTR)
        return []
    if not isinstance(data, list):
        _log.warning("study '%s': %s is not a list; not shown", study.study_name, PROPOSALS_ATTR)
        return []
    return [p for p in data if isinstance(p, dict)]


def _row(
    index: int, proposal: dict[str, Any], trials: dict[int, FrozenTrial], scored: list[float]
) -> list[str]:
    params = ", ".join(f"{k}={fmt(v)}" for k, v in dict(proposal.get("params") or {}).items())
    predicted = fmt(proposal.get("predicted"))
    if proposal.get("uncertainty") is not None:
        predicted += f" ± {fmt(proposal['uncertainty'])}"
    sources = ", ".join(source_text(s) for s in proposal.get("sources") or [] if isinstance(s, dict))
    number = proposal.get("trial_number")
    trial = trials.get(int(number)) if number is not None else None
    actual, rank = _outcome(trial, scored)
    return [str(index), params, predicted, actual, rank, "—" if trial is None else str(trial.number), sources]


def source_text(source: Mapping[str, Any]) -> str:
    """A past task, its similarity, and the proposal's normalized score there, measured or predicted.

    ``source`` is a source of a proposal's record; one written before ``measured`` was kept
    (no such key) is shown as not known.

    Example:
        >>> source_text({"task": "a", "similarity": 0.8, "score": 0.93, "measured": True})
        'a (similarity 0.80, score 0.93 measured)'
    """
    similarity = float(source.get("similarity", math.nan))
    score = source.get("score")
    shown = f"similarity {similarity:.2f}"
    if score is not None:
        measured = source.get("measured")
        whose = " measured" if measured is True else " predicted" if measured is False else _UNKNOWN
        shown += f", score {float(score):.2f}{whose}"
    return f"{source.get('task')} ({shown})"


_UNKNOWN = ", not known if measured or predicted"


def _outcome(trial: FrozenTrial | None, scored: list[float]) -> tuple[str, str]:
    if trial is None:
        return "not run", "—"
    if _scored(trial):
        value = float(trial.value)  # type: ignore[arg-type]
        return fmt(value), f"{scored.index(value) + 1} of {len(scored)}"
    state = trial.state.name.lower()
    if trial.state == TrialState.PRUNED and trial.intermediate_values:
        step = max(trial.intermediate_values)
        return f"pruned at step {step} ({fmt(trial.intermediate_values[step])})", "—"
    return state, "—"


def _scored(trial: FrozenTrial) -> bool:
    """A completed trial of the search (``report --ablate``'s are counted apart, as in the state table)."""
    search = not trial.user_attrs.get(ATTR.ABLATION)
    return (
        search
        and trial.state == TrialState.COMPLETE
        and trial.value is not None
        and math.isfinite(trial.value)
    )
