"""The learned pruner's notes: said once per study, naming what keeps a trial from its model.

Decisions are made at every report, in every worker; a note (no model fits a trial, a
first report late in training, a model too pessimistic on the study) is logged once, and
marked on the study so that other workers and later sessions do not say it again.
"""

from __future__ import annotations

import logging

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial

from autotweak.curves._library import nearest_model
from autotweak.curves._model import CurveModel
from autotweak.space import CategoricalParam, FloatParam, IntParam

__all__ = ["TOLD_PREFIX", "Notes", "misfit"]

TOLD_PREFIX = "autotweak.pruner_told."  # study system attr: the learned pruner's note was said

_log = logging.getLogger(__name__)


class Notes:
    """The notes of :class:`~autotweak.curves.LearnedCurvePruner` (a mix-in of it).

    It reads the pruner's fallback, the notes it said and the nearest shipped model per
    set of parameter names.
    """

    fallback: BasePruner
    _told: set[str]
    _nearest: dict[frozenset[str], CurveModel | None]

    def _tell(self, study: optuna.Study, key: str, message: str, level: int = logging.WARNING) -> None:
        """Log a message once per study: decisions are made at every report, in every worker.

        Each pruner says a note at most once, and not when the study is marked as told (a
        system attr, so another worker's or an earlier session's pruner counts); two workers
        that first meet it at the same moment may both say it.
        """
        if key in self._told:
            return
        self._told.add(key)
        attr = TOLD_PREFIX + key
        try:
            storage = study._storage
            if storage.get_study_system_attrs(study._study_id).get(attr):
                return
            storage.set_study_system_attr(study._study_id, attr, True)
        except Exception:  # a storage hiccup must not stop a decision over a note: say it here
            _log.debug("could not read or mark the pruner's note %r on the study", key, exc_info=True)
        _log.log(level, message)

    def _no_model(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Say, once, why no shipped curve model reads ``trial``, naming the parameters at fault.

        A trial of a space that extends a shipped one and reaches beyond its ranges is a
        warning (the start line said the model serves; these trials go to the fallback); a
        space the models do not read (a parameter dropped or added, a space of one's own) is
        said at INFO (the start line said no model fits).
        """
        names = frozenset(trial.params)
        if names not in self._nearest:  # asked at every report: the files are looked up once
            self._nearest[names] = nearest_model(names)
        near = self._nearest[names]
        serves = near is not None and {p.name for p in near.space.tunable} == names
        if ("range" if serves else "auto") in self._told:
            return
        decides = type(self.fallback).__name__
        if near is None:
            self._tell(
                study,
                "auto",
                f"no curve model fits trial {trial.number}'s parameters {sorted(trial.params)} "
                f"(shipped: the hgb and mlp spaces); {decides} decides.",
                logging.INFO,
            )
        elif serves:
            self._tell(
                study,
                "range",
                f"the shipped curve model (space {near.space.name!r}) does not fit trial {trial.number}: "
                f"{misfit(near, trial)}; the search space reaches beyond the model's ranges, "
                f"and {decides} decides for trials outside them.",
            )
        else:
            self._tell(
                study,
                "auto",
                f"no curve model fits trial {trial.number}'s parameters: the shipped curve model (space "
                f"{near.space.name!r}) does not fit it: {misfit(near, trial)}; {decides} decides.",
                logging.INFO,
            )


def misfit(model: CurveModel, trial: FrozenTrial) -> str:
    """What keeps ``trial`` out of the model's space: the missing parameters, the values out of range."""
    params = trial.params
    missing = [p.name for p in model.space.tunable if p.name not in params]
    extra = sorted(set(params) - set(model.space.names))
    if missing or extra:
        said = [f"has no {', '.join(missing)}"] if missing else []
        said += [f"has {', '.join(extra)}, which the model does not read"] if extra else []
        return f"it {' and '.join(said)} (the model reads {', '.join(model.space.names)})"
    outside = []
    for name in model.space.invalid(dict(params)):
        param = model.space[name]
        if isinstance(param, FloatParam | IntParam):
            allowed = f"in [{param.low}, {param.high}]"
        else:
            allowed = f"one of {list(param.choices)}" if isinstance(param, CategoricalParam) else "fixed"
        value = params.get(name)
        shown = f"{value:.6g}" if isinstance(value, float) else repr(value)  # 0.00465680, not 17 digits
        outside.append(f"{name}={shown} (the model's range: {allowed}{_searched(trial, name)})")
    return ", ".join(outside) or f"its parameters {sorted(params)}"


def _searched(trial: FrozenTrial, name: str) -> str:
    """The study's range of ``name``, which the user widened past the model's: '' if not known."""
    distribution = trial.distributions.get(name)
    if isinstance(distribution, FloatDistribution | IntDistribution):
        return f"; the study's: in [{distribution.low}, {distribution.high}]"
    if isinstance(distribution, CategoricalDistribution):
        return f"; the study's: one of {list(distribution.choices)}"
    return ""
