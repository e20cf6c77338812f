"""Why the learned pruner stopped the trials it stopped, read from the trials' user attrs.

When :class:`~autotweak.curves.LearnedCurvePruner` prunes a trial, it records its decision
on the trial as user attrs ``autotweak.pruner.*`` (``rule``, ``step``, ``p_top_k``,
``predicted_final``, ``predicted_q10``, ``predicted_q90``, ``top_k_value``, ``n_complete``);
the engine copies them to the trial's MLflow run as tags of the same names.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autotweak.curves import ATTR_PREFIX
from autotweak.engine._study import ATTR
from autotweak.report._sections import Section, fmt

__all__ = ["SHOWN", "pruning_section"]

SHOWN = 10
"""Pruned trials listed, the most recent first; the section says how many more there are."""


def pruning_section(study: optuna.Study) -> Section | None:
    """The learned rule's decisions on the trials it pruned.

    ``None`` when it pruned none, unless the study's pruner is the learned one and its fallback
    pruned them all: the section then says so (the default pruner on a space of one's own).
    """
    pruned = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.PRUNED]
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
