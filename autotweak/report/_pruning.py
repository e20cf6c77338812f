"""Why the learned pruner stopped the trials it stopped, read from the trials' user attrs.

When :class:`~autotweak.curves.LearnedCurvePruner` prunes a trial, it records its decision
on the trial as user attrs ``autotweak.pruner.*`` (``rule``, ``step``, ``p_top_k``,
``predicted_final``, ``predicted_q10``, ``predicted_q90``, ``top_k_value``, ``n_complete``);
the engine copies them to the trial's MLflow run as tags of the same names.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autotweak._attrs import DIVERGED_RULE
from autotweak.curves import ATTR_PREFIX
from autotweak.engine._study import ATTR
from autotweak.report._sections import Section, fmt

__all__ = ["SHOWN", "pruning_section"]

SHOWN = 10
"""Pruned trials listed, the most recent first; the section says how many more there are."""


def pruning_section(study: optuna.Study) -> Section | None:
    """The learned rule's decisions on the trials it pruned, and the trials stopped as diverged.

    ``None`` when it pruned none and none diverged, unless the study's pruner is the learned
    one and its fallback pruned them all: the section then says so (the default pruner on a
    space of one's own). A trial that reported NaN (or the worst infinity) was stopped at that
    step whatever the pruner: the section names it, its value and step.
    """
    pruned = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.PRUNED]
    diverged = [t for t in pruned if t.user_attrs.get(ATTR_PREFIX + "rule") == DIVERGED_RULE]
    stopped = {t.number for t in diverged}
    section = _learned_section(study, [t for t in pruned if t.number not in stopped])
    if not diverged:
        return section
    note = _diverged_note(diverged)
    if section is None:
        return Section("Diverged trials", [note])
    return dataclasses.replace(section, notes=[*section.notes, note])


def _diverged_note(trials: list[FrozenTrial]) -> str:
    """``Diverged: trial 3 (NaN at step 2), ...``, the most recent first."""
    shown = sorted(trials, key=lambda t: t.number, reverse=True)[:SHOWN]
    named = ", ".join(
        f"trial {t.number} ({t.user_attrs.get(ATTR_PREFIX + 'value')} at step "
        f"{fmt(t.user_attrs.get(ATTR_PREFIX + 'step'))})"
        for t in shown
    )
    more = f" and {len(trials) - len(shown)} more" if len(trials) > len(shown) else ""
    return (
        f"Diverged: {named}{more}; each was stopped at the step it reported a non-finite value, "
        f"whatever the pruner (MLflow tags `{ATTR_PREFIX}rule`, `value`, `step`)."
    )


def _learned_section(study: optuna.Study, pruned: list[FrozenTrial]) -> Section | None:
    """The learned rule's part of the section, over the ``pruned`` trials that did not diverge."""
    learned = [t for t in pruned if t.user_attrs.get(ATTR_PREFIX + "rule") == "learned"]
    pruner: dict[str, Any] = dict(study.user_attrs.get(ATTR.META, {}).get("pruner") or {})
    if not learned:
        if pruner.get("name") != "learned" or not pruned:
            return None
        fallback = pruner.get("fallback") or "its fallback rule"
        note = (
            f"The curve model decided none of the {len(pruned)} pruned trials: {fallback}, the "
            "learned pruner's fallback, stopped them all (no curve model fits the study's trials, "
            f"or fewer than {pruner.get('n_startup_trials', 'k')} had completed when they were stopped). "
            "Each pruned trial keeps the rule and step as Optuna user attrs and MLflow tags "
            f"`{ATTR_PREFIX}*`."
        )
        return Section("Learned pruner's decisions", [note])
    threshold = pruner.get("threshold")
    shown = sorted(learned, key=lambda t: t.number, reverse=True)[:SHOWN]
    others = len(pruned) - len(learned)
    which = f"{len(learned)} of the {len(pruned)} pruned trials" if others else "every pruned trial"
    notes = [
        f"The learned rule stopped {which}: each when its chance of ending in the top "
        f"{pruner.get('top_k', 'k')} completed trials, p(top-k), fell below the pruner's threshold"
        + ("" if threshold is None else f" ({fmt(threshold)})")
        + (f"; its fallback rule stopped the other {others}." if others else "."),
        "Predicted final: the curve model's median final value, with its 10% and 90% quantiles; "
        "k-th best: the completed value a trial had to reach. Each pruned trial keeps the whole "
        f"record as Optuna user attrs and MLflow tags `{ATTR_PREFIX}*`.",
    ]
    if len(learned) > len(shown):
        notes.append(
            f"Shown: the {len(shown)} most recent; {len(learned) - len(shown)} more are in the study."
        )
    rows = [_row(t, threshold) for t in shown]
    header = ["trial", "step", "p(top-k)", "predicted final (q10 to q90)", "k-th best"]
    return Section("Learned pruner's decisions", notes, header, rows)


def _row(trial: FrozenTrial, threshold: Any) -> list[str]:
    attrs = {k.removeprefix(ATTR_PREFIX): v for k, v in trial.user_attrs.items() if k.startswith(ATTR_PREFIX)}
    p = fmt(attrs.get("p_top_k"))
    if threshold is not None:
        p += f" < {fmt(threshold)}"
    low, mid, high = (fmt(attrs.get(f"predicted_{key}")) for key in ("q10", "final", "q90"))
    final = f"{mid} ({low} to {high})"
    return [str(trial.number), fmt(attrs.get("step")), p, final, fmt(attrs.get("top_k_value"))]
