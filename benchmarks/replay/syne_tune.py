"""Syne Tune's transfer-learning baselines, replayed like every other method.

Three schedulers of ``syne_tune.optimizer.schedulers.transfer_learning`` (Syne Tune 0.16.0,
installed by ``scripts/setup.sh`` with ``--no-deps``):

- ``st_zero_shot``: ``ZeroShotTransfer`` (Wistuba et al. 2015), configs picked greedily to
  minimize the average rank over past tasks. In a sparse history (past tasks ran different
  configs) it imputes each task's scores with its XGBoost surrogates (``use_surrogates``).
- ``st_bounding_box``: ``BoundingBox`` (Perrone et al. 2019), the space shrunk to the
  bounding box of each past task's best config, random search (``RandomSearch``) inside it,
  as in the example of its docstring.
- ``st_quantile``: ``QuantileBasedSurrogateSearcher`` (Salinas et al. 2020, Copula Thompson
  sampling): an XGBoost model of the Gaussian-copula-normalized scores of every past task,
  sampled with noise over 100,000 random candidates, in a ``SingleObjectiveScheduler``.

The history becomes one ``TransferLearningTaskEvaluations`` per past task: its observed
configs and their final validation scores, shape ``(configs, 1 seed, 1 fidelity, 1
objective)``. The objective is ``loss = -val_score``, minimized (``do_minimize=True``),
since the quantile searcher only minimizes. The methods run through ``run_study``: each
suggestion is enqueued in the engine one per ``ask`` and played by the same ``Replay``
(snapped to the nearest unused design config, whole curve read, no pruning), and the
scheduler is told the trial's final validation score before it suggests the next config.
If a scheduler runs out of suggestions, the engine's random sampler fills the budget.

Three defects of Syne Tune 0.16.0 are worked around, not copied: ``ZeroShotTransfer.suggest``
returns a random config from its default searcher (its zero-shot logic is in
``get_config``, which we call); with ``use_surrogates`` it reads its random state before
setting it (fixed upstream after 0.16.0, syne-tune PR 1043) and draws different candidates
for every past task, so that the scores it ranks side by side belong to different configs
(we seed one shared candidate set for all tasks, drawn for the first task and replayed to
the others); and ``RandomSearcher`` ignores its seed (we seed numpy's global generator
around each run, and restore it). XGBoost runs on one thread (its default of all cores
costs 10x the CPU here).

Three costs are cut without changing a single proposal (each checked against Syne Tune's
own code by a test): random candidates are drawn with the same generator calls as Syne
Tune's samplers, without their per-value dispatch (90% of a quantile run: it draws
100,000); zero-shot's greedy pick runs on arrays (its pandas version dropped a column in
place per pick, which leaves one block per candidate for the next pick to walk); and the
shared candidates are drawn once. A sparse zero-shot run on ``mlp`` went from 26 s to
2.2 s of CPU, a quantile run from 3.8 s to 1.9 s.

Example:
    >>> method = SyneTuneSearch("st_zero_shot")  # doctest: +SKIP
    >>> method.search(replay, SearchSetup(space, seed=0, budget=50, history=history))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import importlib
import importlib.metadata
import io
import itertools
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from autotweak import SearchSpace
from autotweak.exceptions import MissingDependencyError
from autotweak.space import CategoricalParam, FloatParam, IntParam
from autotweak.spec import Component
from benchmarks.replay._base import History, ReplayMethod, SearchSetup
from benchmarks.replay.simulate import Replay, run_study

__all__ = ["SYNE_TUNE_METHODS", "SyneTuneSearch", "config_space", "transfer_evaluations"]

LOSS = "loss"
_MODULES = (
    "syne_tune.optimizer.schedulers.transfer_learning.zero_shot",
    "syne_tune.optimizer.schedulers.transfer_learning.bounding_box",
    "syne_tune.optimizer.schedulers.transfer_learning.quantile_based.quantile_based_searcher",
)
Scheduler = Any  # a syne_tune TrialScheduler
Builder = Callable[[dict[str, Any], dict[str, Any], int], Scheduler]


def require_syne_tune() -> str:
    """Import the transfer-learning modules of Syne Tune; returns its version.

    Raises:
        MissingDependencyError: If they do not import, with how to install them.
    """
    try:
        for module in _MODULES:
            importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"Syne Tune's transfer methods need syne-tune and its transfer-learning imports "
            f"(xgboost-cpu, huggingface_hub, dill), which did not import ({exc}); run scripts/setup.sh, "
            f"which installs them with --no-deps."
        ) from exc
    return importlib.metadata.version("syne-tune")


# -- conversions --------------------------------------------------------------------------
def config_space(space: SearchSpace) -> dict[str, Any]:
    """The Syne Tune config space of ``space``'s tunable parameters.

    Steps are left out: every proposal is snapped to the task's design anyway.
    """
    from syne_tune.config_space import choice, lograndint, loguniform, randint, uniform

    domains: dict[str, Any] = {}
    for param in space.tunable:
        if isinstance(param, CategoricalParam):
            domains[param.name] = choice(list(param.choices))
        elif isinstance(param, IntParam):
            domains[param.name] = (lograndint if param.log else randint)(param.low, param.high)
        else:
            domains[param.name] = (loguniform if param.log else uniform)(param.low, param.high)
    return domains


def transfer_evaluations(history: History, space: SearchSpace) -> dict[str, Any]:
    """Past task -> ``TransferLearningTaskEvaluations`` of its observed configs, ``loss = -score``."""
    from syne_tune.optimizer.schedulers.transfer_learning.transfer_learning_task_evaluation import (
        TransferLearningTaskEvaluations,
    )

    domains = config_space(space)
    names = list(domains)
    evaluations = {}
    for task in history.tasks:
        scores = history.scores[task]
        ids = sorted(scores)
        if not ids:
            continue
        frame = pd.DataFrame([[history.configs[cid][n] for n in names] for cid in ids], columns=names)
        losses = -np.array([scores[cid] for cid in ids], dtype=np.float64).reshape(-1, 1, 1, 1)
        evaluations[task] = TransferLearningTaskEvaluations(
            configuration_space=domains,
            hyperparameters=frame,
            objectives_names=[LOSS],
            objectives_evaluations=losses,
        )
    return evaluations


def to_config(suggestion: Mapping[str, Any], space: SearchSpace) -> dict[str, Any]:
    """A Syne Tune config as plain values inside ``space``'s bounds (for ``enqueue_trial``)."""
    config: dict[str, Any] = {}
    for param in space.tunable:
        value = suggestion[param.name]
        if isinstance(param, IntParam):
            value = int(min(max(round(float(value)), param.low), param.high))
        elif isinstance(param, FloatParam):
            value = float(min(max(float(value), param.low), param.high))
        config[param.name] = value
    return config


# -- drawing random configs ----------------------------------------------------------------
Draw = Callable[[np.random.RandomState], Any]
ConfigDraw = Callable[[np.random.RandomState], dict[str, Any]]


def _draw(domain: Any) -> Draw:
    """``domain.sample(random_state=...)`` for one value: the same generator calls, in the same
    order, so the same values; without the per-value dispatch, which took 90% of a quantile run
    (it draws 100,000 candidates). Other domains are sampled by Syne Tune itself."""
    from syne_tune.config_space import Categorical, Float, Integer

    sampler = type(domain.get_sampler())
    cast = domain.cast
    if sampler is Float._Uniform:
        low, high = domain.lower, domain.upper
        return lambda rs: cast(rs.uniform(low, high))
    if sampler is Float._LogUniform:
        log_low, log_high = np.log(domain.lower), np.log(domain.upper)
        return lambda rs: cast(np.exp(rs.uniform(log_low, log_high)))
    if sampler is Integer._LogUniform:
        log_low, log_high = np.log(domain.lower), np.log(domain.upper)
        return lambda rs: cast(np.round(np.exp(rs.uniform(log_low, log_high))))
    if sampler is Integer._Uniform:
        low, high = domain.lower, domain.upper + 1
        return lambda rs: cast(rs.randint(low, high))
    if sampler is Categorical._Uniform:
        categories, n = domain.categories, len(domain.categories)
        return lambda rs: cast(categories[rs.randint(0, n)])  # choice(n) is randint(0, n)
    return lambda rs: domain.sample(random_state=rs)


def random_config_drawer(config_space: Mapping[str, Any]) -> ConfigDraw:
    """What Syne Tune's ``_sample_random_config`` returns for ``config_space``, value for value."""
    from syne_tune.config_space import Domain

    draws = {k: _draw(v) if isinstance(v, Domain) else None for k, v in config_space.items()}
    fixed = {k: v for k, v in config_space.items() if draws[k] is None}

    def draw(rs: np.random.RandomState) -> dict[str, Any]:
        return {k: fixed[k] if d is None else d(rs) for k, d in draws.items()}

    return draw


# -- the schedulers -----------------------------------------------------------------------
@functools.cache
def _zero_shot_class() -> type:
    """``ZeroShotTransfer`` with the two defects of 0.16.0 worked around (see the module doc)."""
    from syne_tune.config_space import cast_config_values
    from syne_tune.optimizer.scheduler import TrialSuggestion
    from syne_tune.optimizer.schedulers.transfer_learning.zero_shot import ZeroShotTransfer

    class ZeroShot(ZeroShotTransfer):  # type: ignore[misc]
        _hyperparameters: pd.DataFrame

        def __init__(self, **kwargs: Any) -> None:
            self._candidates: list[dict[str, Any]] = []
            self._replayed: Iterator[dict[str, Any]] | None = None
            self._draw: ConfigDraw | None = None
            super().__init__(**kwargs)
            # get_config's state as arrays (columns: candidates; rows: past tasks).
            self._rank_array = self._ranks.to_numpy(dtype=np.float64, copy=True)
            self._rank_labels = self._ranks.columns.to_numpy()
            self._score_array = self._scores.to_numpy(dtype=np.float64, copy=True)
            self._score_labels = self._scores.columns.to_numpy()

        def get_config(self, **kwargs: Any) -> dict[str, Any] | None:
            """``ZeroShotTransfer.get_config``'s greedy step on arrays, pick for pick the same.

            Its pandas version drops a column in place from a frame of 10,000 candidates,
            which leaves pandas one block per column to walk at every later pick (60% of a
            sparse run). Ranks are multiples of 1/2, so their sums and means are exact in
            any order and the argmin ties break alike (first column).
            """
            ranks = self._rank_array
            if ranks.shape[1] == 0:
                return None
            column = int(np.argmin(ranks.mean(axis=0)))
            label = self._rank_labels[column]
            np.minimum(ranks, ranks[:, column : column + 1], out=ranks)
            kept = self._score_labels != label
            self._score_array, self._score_labels = self._score_array[:, kept], self._score_labels[kept]
            config: dict[str, Any] = self._hyperparameters.loc[label].to_dict()
            self._hyperparameters = self._hyperparameters.drop(index=label)
            if ranks.shape[1] < 2 or ranks.std(axis=1, ddof=1).sum() == 0:  # pandas: NaN std skipped
                self._rank_array = rankdata(self._score_array, axis=1)
                self._rank_labels = self._score_labels
            return config

        def _create_surrogate_transfer_learning_evaluations(
            self, config_space: dict[str, Any], evaluations: dict[str, Any], metric: str
        ) -> dict[str, Any]:
            imputed: dict[str, Any] = {}
            for task, evaluation in evaluations.items():
                # The same seed for every task: every surrogate scores the same candidates,
                # drawn for the first task and replayed for the others (the same draws).
                self.random_state = np.random.RandomState(self.random_seed)
                self._replayed = iter(self._candidates) if self._candidates else None
                imputed |= super()._create_surrogate_transfer_learning_evaluations(
                    config_space, {task: evaluation}, metric
                )
            self._replayed = None
            return imputed

        def _sample_random_config(self, config_space: dict[str, Any]) -> dict[str, Any]:
            if self._replayed is not None:
                return dict(next(self._replayed))
            if self._draw is None:
                self._draw = random_config_drawer(config_space)
            config = self._draw(self.random_state)
            self._candidates.append(config)
            return config

        def suggest(self) -> Any:
            config = self.get_config()
            if config is None:
                return None
            return TrialSuggestion.start_suggestion(cast_config_values(config, self.config_space))

    return ZeroShot


def _zero_shot(domains: dict[str, Any], evaluations: dict[str, Any], seed: int) -> Scheduler:
    observed = {tuple(map(tuple, e.hyperparameters.to_numpy().tolist())) for e in evaluations.values()}
    # Dense histories share their configs (in the same order): rank them directly.
    return _zero_shot_class()(
        config_space=domains,
        metric=LOSS,
        transfer_learning_evaluations=evaluations,
        do_minimize=True,
        sort_transfer_learning_evaluations=False,
        use_surrogates=len(observed) > 1,
        random_seed=seed,
    )


def _bounding_box(domains: dict[str, Any], evaluations: dict[str, Any], seed: int) -> Scheduler:
    from syne_tune.optimizer.baselines import RandomSearch
    from syne_tune.optimizer.schedulers.transfer_learning.bounding_box import BoundingBox

    def inside(box: dict[str, Any], metric: str, do_minimize: bool, random_seed: int) -> Scheduler:
        return RandomSearch(box, [metric], do_minimize=do_minimize, random_seed=random_seed)

    return BoundingBox(
        scheduler_fun=inside,
        config_space=domains,
        metric=LOSS,
        transfer_learning_evaluations=evaluations,
        do_minimize=True,
        random_seed=seed,
    )


@functools.cache
def _quantile_class() -> type:
    """``QuantileBasedSurrogateSearcher`` drawing its 100,000 candidates without per-value dispatch."""
    from syne_tune.optimizer.schedulers.transfer_learning.quantile_based.quantile_based_searcher import (
        QuantileBasedSurrogateSearcher,
    )

    class Quantile(QuantileBasedSurrogateSearcher):  # type: ignore[misc]
        _draw: ConfigDraw | None = None

        def _sample_random_config(self) -> dict[str, Any]:
            if self._draw is None:
                self._draw = random_config_drawer(self.config_space)
            return self._draw(self.random_state)

    return Quantile


def _quantile(domains: dict[str, Any], evaluations: dict[str, Any], seed: int) -> Scheduler:
    from syne_tune.optimizer.schedulers.single_objective_scheduler import SingleObjectiveScheduler

    searcher = _quantile_class()(
        config_space=domains, transfer_learning_evaluations=evaluations, random_seed=seed
    )
    return SingleObjectiveScheduler(domains, LOSS, do_minimize=True, searcher=searcher, random_seed=seed)


SCHEDULERS: dict[str, tuple[str, Builder]] = {
    "st_zero_shot": ("ZeroShotTransfer", _zero_shot),
    "st_bounding_box": ("BoundingBox(RandomSearch)", _bounding_box),
    "st_quantile": ("QuantileBasedSurrogateSearcher", _quantile),
}
SYNE_TUNE_METHODS = tuple(SCHEDULERS)


# -- driving them -------------------------------------------------------------------------
def proposals(scheduler: Scheduler, replay: Replay, space: SearchSpace) -> Iterator[dict[str, Any]]:
    """The scheduler's suggestions for ``run_study(first=...)``, each trial told before the next.

    ``run_study`` draws one proposal right before each ``ask`` and plays that trial before
    drawing the next, so when the generator resumes, its trial is the next one of
    ``replay.trials``.
    """
    from syne_tune.backend.trial_status import Trial

    start = len(replay.trials)
    for trial_id in itertools.count():
        suggestion = scheduler.suggest()
        if suggestion is None:
            return
        trial = Trial(trial_id=trial_id, config=suggestion.config, creation_time=datetime.datetime.now())
        scheduler.on_trial_add(trial)
        yield to_config(suggestion.config, space)
        result = {LOSS: -replay.trials[start + trial_id].val}
        scheduler.on_trial_result(trial, result)
        scheduler.on_trial_complete(trial, result)


@contextlib.contextmanager
def _quiet_and_seeded(seed: int) -> Iterator[None]:
    """Silence Syne Tune's prints, logs and (pandas) warnings, seed its draws, one XGBoost thread.

    ``RandomSearcher`` (inside ``BoundingBox``) ignores its ``random_seed`` and draws from
    numpy's global generator: it is seeded here and restored afterwards.
    """
    import xgboost

    logger = logging.getLogger("syne_tune")
    level, state = logger.level, np.random.get_state()
    logger.setLevel(logging.ERROR)
    np.random.seed(seed)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            xgboost.config_context(nthread=1),
        ):
            warnings.filterwarnings("ignore", module=r"syne_tune\.")
            yield
    finally:
        logger.setLevel(level)
        np.random.set_state(state)


class SyneTuneSearch(ReplayMethod):
    """A Syne Tune transfer scheduler, built from the history of past tasks, on the replay.

    Args:
        method: A key of ``SCHEDULERS`` (``st_zero_shot``, ``st_bounding_box``, ``st_quantile``).

    Raises:
        MissingDependencyError: If Syne Tune's transfer-learning modules do not import.
    """

    uses_history = True

    def __init__(self, method: str) -> None:
        if method not in SCHEDULERS:
            raise ValueError(f"method must be one of {', '.join(SCHEDULERS)}, got method={method!r}.")
        self.method = method
        self.version = require_syne_tune()

    @property
    def meta(self) -> dict[str, Any]:
        scheduler, _ = SCHEDULERS[self.method]
        return {"name": self.method, "scheduler": scheduler, "syne_tune": self.version, "then": "random"}

    def search(self, replay: Replay, setup: SearchSetup) -> None:
        if setup.history is None:
            raise ValueError(f"{self.method} needs the history of past tasks, got history=None.")
        evaluations = transfer_evaluations(setup.history, setup.space)
        _, build = SCHEDULERS[self.method]
        with _quiet_and_seeded(setup.seed):
            scheduler = build(config_space(setup.space), evaluations, setup.seed)
            run_study(
                replay,
                setup.space,
                seed=setup.seed,
                budget=setup.budget,
                sampler=Component("random"),
                first=proposals(scheduler, replay, setup.space),
            )
