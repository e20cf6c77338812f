"""What the start line says of the meta sampler and the learned pruner: the model that serves, or none.

``sampler: meta`` (the default) and ``pruner: learned`` look for a shipped or found model
that fits the study's space and, where none does, quietly run their base sampler and
classic rule. The start line says which, so a study of a space without a model does not
read as warm-started.
"""

from __future__ import annotations

from autotweak.spec import Experiment

__all__ = ["pruner_shown", "sampler_shown"]


def sampler_shown(experiment: Experiment) -> str:
    """``meta (47 past tasks)``, ``meta (no meta-model fits the space: tpe alone)``, or the sampler's name."""
    sampler = experiment.sampler
    if sampler.name != "meta" or str(sampler.args.get("model", "auto")) != "auto":
        return sampler.name
    from autotweak.meta import resolve_meta_model

    model = resolve_meta_model("auto", experiment.space)
    if model is None:
        return f"meta (no meta-model fits the space: {sampler.args.get('base', 'tpe')} alone)"
    return f"meta ({model.n_tasks} past tasks)"


def pruner_shown(experiment: Experiment) -> str:
    """``learned (47 past tasks' curves)``, ``learned (no curve model fits the space: ...)``, or the name."""
    pruner = experiment.pruner
    if pruner.name != "learned" or str(pruner.args.get("model", "auto")) != "auto":
        return pruner.name
    from autotweak.curves._library import model_for

    space = experiment.space
    centre = space.from_unit([0.5] * len(space.tunable))
    params = {p.name: centre[p.name] for p in space.tunable if p.name in centre}
    model = None if any(p.when is not None for p in space.params) else model_for(params)
    if model is None:
        return "learned (no curve model fits the space: MedianPruner decides)"
    tasks = model.summary.get("tasks")
    return f"learned ({len(tasks)} past tasks' curves)" if isinstance(tasks, list) and tasks else "learned"
