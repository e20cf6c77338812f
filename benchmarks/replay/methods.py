"""The methods compared, by name: ``METHODS`` maps a name to a factory of a method.

Every method but the full grid runs through autotweak's own engine (``autotweak.Study``,
ask/tell, in memory) with samplers and pruners from autotweak's registries and Optuna's
defaults. A new method is one entry; Syne Tune's transfer schedulers are entries too
(``syne_tune.py``: a ``ReplayMethod`` that feeds their suggestions to the same engine and ``Replay``).

Example:
    >>> method = METHODS["tpe+median"]()
    >>> method.meta
    {'name': 'engine', 'sampler': 'tpe', 'sampler_args': {}, 'pruner': 'median', 'pruner_args': {}}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autotweak.spec import Component
from benchmarks.replay._base import ReplayMethod, SearchSetup
from benchmarks.replay.learned import LearnedPrunerSearch
from benchmarks.replay.meta import MetaLearnerSearch
from benchmarks.replay.portfolio import greedy_portfolio
from benchmarks.replay.simulate import Replay, run_study
from benchmarks.replay.syne_tune import SyneTuneSearch

__all__ = ["DEFAULT_METHODS", "METHODS", "EngineSearch", "FullGrid", "GreedyPortfolioSearch"]

PORTFOLIO_SIZE = 32


class FullGrid(ReplayMethod):
    """Every config of the design in design order (``config_id``): the reference.

    It ignores the budget: its regret at K is that of the first K design configs, and
    it always reaches the best config at the end.
    """

    @property
    def meta(self) -> dict[str, Any]:
        return {"name": "full_grid"}

    def search(self, replay: Replay, setup: SearchSetup) -> None:
        for row in range(replay.task.n_configs):
            replay.evaluate(row)


class EngineSearch(ReplayMethod):
    """A sampler and a pruner of autotweak's registries, run by the engine.

    Args:
        sampler: Sampler by registry name, with arguments.
        pruner: Pruner by registry name, with arguments (none by default).
    """

    def __init__(self, sampler: Component, pruner: Component | None = None) -> None:
        self.sampler = sampler
        self.pruner = pruner or Component("none")

    @property
    def meta(self) -> dict[str, Any]:
        return {
            "name": "engine",
            "sampler": self.sampler.name,
            "sampler_args": dict(self.sampler.args),
            "pruner": self.pruner.name,
            "pruner_args": dict(self.pruner.args),
        }

    def search(self, replay: Replay, setup: SearchSetup) -> None:
        run_study(
            replay,
            setup.space,
            seed=setup.seed,
            budget=setup.budget,
            sampler=self.sampler,
            pruner=self.pruner,
        )


class GreedyPortfolioSearch(ReplayMethod):
    """A greedy portfolio from past tasks, proposed first; then a sampler continues.

    The portfolio configs are enqueued through the engine (``enqueue_trial``), so the
    sampler that follows sees them as its first observations.

    Args:
        size: Most configs in the portfolio (auto-sklearn 2.0 uses 32).
        then: Sampler after the portfolio.
    """

    uses_history = True

    def __init__(self, size: int = PORTFOLIO_SIZE, then: Component | None = None) -> None:
        self.size = size
        self.then = then or Component("tpe")

    @property
    def meta(self) -> dict[str, Any]:
        return {"name": "greedy_portfolio", "size": self.size, "then": self.then.name}

    def search(self, replay: Replay, setup: SearchSetup) -> None:
        if setup.history is None:
            raise ValueError("greedy_portfolio needs the history of past tasks, got history=None.")
        history = setup.history
        portfolio = [history.configs[cid] for cid in greedy_portfolio(history, self.size, setup.space)]
        run_study(
            replay, setup.space, seed=setup.seed, budget=setup.budget, sampler=self.then, first=portfolio
        )


def _engine(sampler: str, pruner: str = "none") -> Callable[[], ReplayMethod]:
    return lambda: EngineSearch(Component(sampler), Component(pruner))


METHODS: dict[str, Callable[[], ReplayMethod]] = {
    "full_grid": FullGrid,
    "random": _engine("random"),
    "tpe": _engine("tpe"),
    "gp": _engine("gp"),
    "tpe+median": _engine("tpe", "median"),
    "tpe+hyperband": _engine("tpe", "hyperband"),
    "tpe+sh": _engine("tpe", "successive_halving"),
    "tpe+learned": LearnedPrunerSearch,
    "greedy_portfolio": GreedyPortfolioSearch,
    "st_zero_shot": lambda: SyneTuneSearch("st_zero_shot"),
    "st_bounding_box": lambda: SyneTuneSearch("st_bounding_box"),
    "st_quantile": lambda: SyneTuneSearch("st_quantile"),
    "meta": MetaLearnerSearch,
    "meta_shuffled": lambda: MetaLearnerSearch(shuffled=True),
}

# Every baseline of BENCHMARK.md runs by default; the default run keeps to 15 minutes on 2
# cores by testing on a subset of tasks (runner.default_test_tasks), not by leaving methods out.
DEFAULT_METHODS = tuple(METHODS)
