"""``MetaSampler``: an Optuna sampler that starts a study from past experience.

It wraps any Optuna sampler (TPE by default). For the first ``n_meta`` trials it proposes
the meta-model's configs (see :class:`~autotweak.meta._propose.Proposer`): the
warm-start portfolio, then proposals that follow the past tasks that rank this study's
results best. The base sampler sees every one of those trials as an observation (CMA-ES
excepted: Optuna's CMA-ES learns only from the trials it sampled itself) and takes over
after them, or as soon as the negative-transfer guard finds that the past ranks this
study's results no better than chance. Then the fallback is cold: from that point on the
base sampler no longer sees the proposed trials, so a prior judged wrong for this task
does not steer the search that replaces it (a density-based sampler such as TPE would
otherwise keep searching where the wrong prior sent it). Samplers that read the storage
directly (brute force) still see every trial; a grid is refused as the base (it would take
a grid point for each proposal and never run it). A multi-objective study gets no
proposals: the base sampler alone runs it.

A trial runs a proposal when it suggests every parameter of the model's space with the
proposed value. A proposed value outside the trial's distribution (a narrower range,
another kind) is not served: that parameter and the trial's later ones come from the base
sampler, and the trial is not a proposal. Later proposals are drawn from the candidates
inside the distributions the study's trials use, and once a complete trial lacks a
parameter of the model's space, the study's space is not the model's and the base sampler
takes over. What the similarity weights and the guard learn from is the params of the
finished trials, the configs that ran, proposed or not.

Its decisions depend only on what the study's storage holds, so any number of workers
share one study. A trial that ran a proposal carries the system attribute
``autotweak.meta_proposal`` (the proposal: params, predicted normalized score,
uncertainty, source tasks and their similarity; read them with
``proposals_of(study.trials)``); a tripped guard is recorded on the study as
``autotweak.meta_guard`` (read it with ``guard_of(study)``).

Without a model, or for parameters outside the model's space, it is exactly its base
sampler, so it is a drop-in for plain Optuna users:

Example:
    >>> import optuna
    >>> from autotweak.meta import proposals_of
    >>> study = optuna.create_study(sampler=MetaSampler(seed=0))
    >>> study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=3)
    >>> len(study.trials), proposals_of(study.trials), guard_of(study)
    (3, [], None)
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from numpy.typing import NDArray
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from autotweak.meta._model import MetaModel
from autotweak.meta._propose import Proposal, Proposer, descriptor_weights
from autotweak.meta._records import (
    CLAIM_ATTR,
    GUARD_AFTER,
    PROPOSAL_ATTR,
    UNITS_KEY,
    guard_of,  # noqa: F401  # the module's example calls it
    say_no_model,
)
from autotweak.meta._sampler_args import _check, _count, _descriptor_argument, _model_argument, _tau
from autotweak.meta._sampler_plan import Planner
from autotweak.meta._sampler_serving import (
    Serving,
    StudyKey,
    fits_distribution,
    ran_proposal,
    study_key,
    unit_point,
)

__all__ = ["MetaSampler"]

_log = logging.getLogger(__name__)


class MetaSampler(Planner, BaseSampler):
    """Warm-start proposals from a meta-model, then the base sampler.

    Args:
        model: The fitted meta-model, or its file; ``None`` makes this sampler its base
            sampler.
        base: The sampler that follows (``TPESampler(seed=seed)`` by default).
        n_meta: Trials that run proposals of the meta-model, at most.
        guard_after: Complete trials before the negative-transfer guard is checked.
        guard_threshold: The guard trips when the prior's Kendall tau with the study's
            results is below this.
        descriptor: The new task's descriptor (meta-features, family, tags) for the prior
            weights of the past tasks; uniform weights if ``None`` or nothing matches.
        seed: Seed of the default base sampler.
        why_no_model: Why no meta-model serves the study though one fits its parameters
            (see ``resolve_with_reason``); with no ``model``, it is said once per study
            (recorded as ``autotweak.meta_no_model``), at its first trial, with the sampler
            that runs instead.

    Raises:
        MetaSamplerArgumentError: If an argument breaks its rule.
        MetaModelError: If the model file cannot be read.
    """

    def __init__(
        self,
        model: MetaModel | str | os.PathLike[str] | None = None,
        base: BaseSampler | None = None,
        *,
        n_meta: int = 10,
        guard_after: int = GUARD_AFTER,
        guard_threshold: float = 0.0,
        descriptor: Mapping[str, Any] | None = None,
        seed: int | None = None,
        why_no_model: str | None = None,
    ) -> None:
        self.model = _model_argument(model)
        noted = why_no_model is None or isinstance(why_no_model, str)
        _check("why_no_model", why_no_model, noted, "a string or None")
        self.why_no_model = why_no_model
        _check("base", base, base is None or isinstance(base, BaseSampler), "an Optuna sampler or None")
        _check(
            "base",
            base,
            not isinstance(base, optuna.samplers.GridSampler),
            "a sampler other than GridSampler (the grid takes a point for each proposal and never runs it)",
        )
        self.base = base if base is not None else optuna.samplers.TPESampler(seed=seed)
        self.n_meta = _count("n_meta", n_meta, 0)
        self.guard_after = _count("guard_after", guard_after, 2)
        self.guard_threshold = _tau("guard_threshold", guard_threshold)
        described = _descriptor_argument(descriptor)
        prior = descriptor_weights(self.model, described) if self.model is not None and described else None
        self.proposer = Proposer(self.model, prior) if self.model is not None else None
        self._names = [p.name for p in self.model.space.tunable] if self.model is not None else []
        # Kept per study (one sampler object may serve several studies, one after the other):
        # trials by (study, trial id), and the studies handed over or turned cold.
        self._pending: dict[tuple[StudyKey, int], Serving | None] = {}
        self._inside: dict[frozenset[tuple[str, BaseDistribution]], NDArray[np.bool_]] = {}
        self._handed_over: set[StudyKey] = set()
        self._cold: set[StudyKey] = set()
        self._noted: set[StudyKey] = set()  # studies whose why_no_model this sampler said or found said
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (to send to another process): without the lock and this process's open trials."""
        state = dict(self.__dict__)
        del state["_lock"]
        state["_pending"] = {}
        state["_noted"] = set()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def meta(self) -> dict[str, Any]:
        """What this sampler is (logged with the study, compared on resume)."""
        base = type(self.base)
        model = None if self.model is None else {"digest": self.model.digest, "tasks": self.model.n_tasks}
        return {
            "name": "meta",
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "base": f"{base.__module__}.{base.__qualname__}",
            "model": model,
            "n_meta": self.n_meta,
            "guard_after": self.guard_after,
            "guard_threshold": self.guard_threshold,
        }

    # -- BaseSampler ----------------------------------------------------------------------
    def reseed_rng(self) -> None:
        self.base.reseed_rng()

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        serving = self._serving(study, trial)
        space = self.base.infer_relative_search_space(self._base_view(study), trial)
        if serving is None:
            return space
        # The model's parameters go through sample_independent, where the proposal is served.
        return {name: d for name, d in space.items() if name not in self._names}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        return self.base.sample_relative(self._base_view(study), trial, search_space)

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        serving = self._serving(study, trial) if param_name in self._names else None
        if serving is not None and self._serve(study, trial, serving, param_name, param_distribution):
            return serving.proposal.params[param_name]
        return self.base.sample_independent(self._base_view(study), trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._say_why_no_model(study)
        # Decided while the trial is asked for: workers ask one at a time (the ask lock), and
        # suggest after it.
        self._serving(study, trial)
        self.base.before_trial(self._base_view(study), trial)

    def after_trial(
        self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        with self._lock:
            serving = self._pending.pop((study_key(study), trial._trial_id), None)
            # A parameter whose value was not the sampler's to give (a single-valued range)
            # may complete a proposal: the trial ran it all the same.
            open_ = serving is not None and not (serving.recorded or serving.dropped)
            if (
                serving is not None
                and open_
                and ran_proposal(trial.params, serving.proposal.params, self._names)
            ):
                self._record(study, trial, serving)
        self.base.after_trial(self._base_view(study), trial, state, values)

    def _say_why_no_model(self, study: Study) -> None:
        """Say why no model serves the study, at its first trial, if no worker has (nor a dry run is)."""
        if self.model is not None or self.why_no_model is None:
            return
        with self._lock:
            if study_key(study) in self._noted:
                return
            self._noted.add(study_key(study))
        say_no_model(study, self.why_no_model, type(self.base).__name__)

    # -- the meta phase -------------------------------------------------------------------
    def plan(self, k: int, *, first: Sequence[Mapping[str, Any]] = ()) -> list[Proposal]:
        """The proposals a study starts with, before any result is in (what ``suggest`` shows).

        Args:
            k: How many proposals (at most ``n_meta`` are served in a study).
            first: Configs the study runs before the proposals, e.g. the base config
                (``optimize`` runs it as trial 0); the proposals complement them.

        The first proposal is the one a study runs right after ``first``; the later ones are
        what it runs while no result is in (e.g. with parallel workers) and they follow the
        study's results once there are two.
        """
        if self.proposer is None or self.model is None:
            return []
        points = (unit_point(self.model, self._names, config) for config in first)
        tried = [point for point in points if point is not None]
        out: list[Proposal] = []
        for _ in range(min(k, len(self.model.units) - len(tried))):
            proposal = self.proposer.propose(tried, [])
            out.append(proposal)
            tried.append(self.model.units[proposal.index].tolist())
        return out

    def _serving(self, study: Study, trial: FrozenTrial) -> Serving | None:
        """The proposal of this trial, decided once (when it is asked for).

        The lock makes deciding one step for the threads of this process, so two trials
        never get the same proposal. Other processes see it from the trial's claim, stored
        when it is decided (when the trial is asked for, under the engine's ask lock), until
        the trial has suggested it whole.
        """
        with self._lock:
            pending = (study_key(study), trial._trial_id)
            if pending not in self._pending:
                if study_key(study) not in self._cold and self._guard_recorded(study):
                    self._cold.add(study_key(study))
                proposal = self._next_proposal(study, trial)
                serving = None
                if proposal is not None:
                    assert self.model is not None
                    serving = Serving(proposal, self.model.units[proposal.index].tolist())
                    study._storage.set_trial_system_attr(trial._trial_id, CLAIM_ATTR, serving.units)
                self._pending[pending] = serving
            return self._pending[pending]

    def _serve(
        self, study: Study, trial: FrozenTrial, serving: Serving, name: str, distribution: BaseDistribution
    ) -> bool:
        """Whether the proposal gives ``name`` its value; once the trial has it all, it is recorded."""
        proposed = serving.proposal.params
        with self._lock:
            if serving.dropped:
                return False
            earlier = [n for n in self._names if n in trial.params]
            if not fits_distribution(distribution, proposed[name]) or not ran_proposal(
                trial.params, proposed, earlier
            ):
                serving.dropped = True
                _log.debug(
                    "meta-learner: trial %d: the proposed %s=%r is not served (its distribution is %s); "
                    "the base sampler gives the rest, and the trial is not a proposal",
                    trial.number,
                    name,
                    proposed[name],
                    distribution,
                )
                return False
            if len(earlier) == len(self._names) - 1:
                self._record(study, trial, serving)
        return True

    def _record(self, study: Study, trial: FrozenTrial, serving: Serving) -> None:
        record = serving.proposal.to_dict() | {UNITS_KEY: serving.units}
        study._storage.set_trial_system_attr(trial._trial_id, PROPOSAL_ATTR, record)
        serving.recorded = True
