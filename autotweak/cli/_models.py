"""What the start line says of the meta sampler and the learned pruner: the model that serves, or none.

``sampler: meta`` (the default) and ``pruner: learned`` look for a shipped or found model
that fits the study's space and, where none does, quietly run their base sampler and
classic rule. The start line says which, so a study of a space without a model does not
read as warm-started.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from autotweak.exceptions import AutotweakError

if TYPE_CHECKING:
    from autotweak.space import Param
    from autotweak.spec import Experiment

__all__ = ["pruner_shown", "sampler_shown", "tasks_said"]


def tasks_said(n: int) -> str:
    return f"{n} past task{'' if n == 1 else 's'}"


def sampler_shown(experiment: Experiment) -> str:
    """``meta (47 past tasks)``, ``meta (lab.meta.npz: 3 past tasks)``, ``meta (no ...)`` or ``tpe``."""
    sampler = experiment.sampler
    if sampler.name != "meta":
        return sampler.name
    from autotweak.meta import resolve_meta_model
    from autotweak.meta._library import resolve_with_reason, why_none_fits

    named = str(sampler.args.get("model", "auto"))
    if named == "none":
        return f"meta (no meta-model: {sampler.args.get('base', 'tpe')} alone)"
    if named != "auto":
        try:
            given = resolve_meta_model(named, experiment.space)
        except AutotweakError:  # refused by the spec's own check, which says why
            return sampler.name
        if given is None:
            return sampler.name
        return f"meta ({Path(named).name}: {tasks_said(given.n_tasks)})"
    model, unserved = resolve_with_reason("auto", experiment.space)
    if model is None:
        nearest = why_none_fits(experiment.space)
        why = (
            "no candidate of its meta-model inside the space" if unserved else "no meta-model fits the space"
        )
        why += f": {nearest};" if nearest and not unserved else ":"
        return f"meta ({why} {sampler.args.get('base', 'tpe')} alone)"
    return f"meta ({tasks_said(model.n_tasks)})"


def pruner_shown(experiment: Experiment) -> str:
    """``learned (47 past tasks' curves)``, ``learned (no curve model fits the space: ...)``, or the name."""
    pruner = experiment.pruner
    if pruner.name != "learned":
        return pruner.name
    named = pruner.args.get("model", "auto")
    if named is not None and str(named) != "auto":
        from autotweak.curves import load_curve_model

        try:
            given = load_curve_model(str(named))
        except AutotweakError:
            return pruner.name
        tasks = given.summary.get("tasks")
        count = f": {tasks_said(len(tasks))}' curves" if isinstance(tasks, list) and tasks else ""
        return f"learned ({Path(str(named)).name}{count})"
    if named is None:
        return "learned (no curve model: MedianPruner decides)"
    from autotweak.curves._library import nearest_model

    space = experiment.space
    names = [p.name for p in space.tunable]
    model = None if any(p.when is not None for p in space.params) else nearest_model(names)
    if model is None:
        return "learned (no curve model fits the space: MedianPruner decides)"
    theirs = {p.name for p in model.space.tunable}
    missing = [p.name for p in model.space.tunable if p.name not in names]
    extra = [name for name in names if name not in theirs]
    if missing or extra:
        said = [f"needs {', '.join(missing)}"] if missing else []
        said += [f"does not read {', '.join(extra)}"] if extra else []
        why = f"the {model.space.name} curve model {' and '.join(said)}"
        return f"learned (no curve model fits the space: {why}; MedianPruner decides)"
    beyond = [_beyond(space[name], model.space[name]) for name in names]
    missed = [text for disjoint, text in beyond if disjoint]
    if missed:
        return f"learned (no curve model fits the space: {', '.join(missed)}; MedianPruner decides)"
    tasks = model.summary.get("tasks")
    shown = f"{tasks_said(len(tasks))}' curves" if isinstance(tasks, list) and tasks else model.space.name
    wider = [text for _, text in beyond if text]
    if wider:
        shown += f"; {', '.join(wider)}: MedianPruner decides those trials"
    return f"learned ({shown})"


def _beyond(mine: Param, model: Param) -> tuple[bool, str]:
    """Whether ``mine`` misses the curve model's ``model`` altogether, and what of it lies outside it.

    Returns:
        ``(misses, text)``: ``text`` names the parameter and the model's range, ``""`` if inside.
    """
    from autotweak.space import CategoricalParam, FloatParam, IntParam

    if isinstance(mine, FloatParam | IntParam) and isinstance(model, FloatParam | IntParam):
        theirs = f"[{model.low}, {model.high}]"
        if mine.high < model.low or mine.low > model.high:
            return True, f"{mine.name} in [{mine.low}, {mine.high}] misses the model's {theirs}"
        if mine.low < model.low or mine.high > model.high:
            return False, f"{mine.name} beyond the model's {theirs}"
    if isinstance(mine, CategoricalParam) and isinstance(model, CategoricalParam):
        new = [c for c in mine.choices if c not in model.choices]
        if len(new) == len(mine.choices):
            return True, f"{mine.name} has none of the model's choices {list(model.choices)}"
        if new:
            return False, f"{mine.name} choices {new} unknown to the model"
    return False, ""
