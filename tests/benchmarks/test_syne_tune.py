"""Syne Tune's transfer baselines on small replays of the recorded hgb data.

syne-tune is installed by scripts/setup.sh (with --no-deps); without it these tests fail
and say so, they are not skipped.
"""

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import rankdata

from autotweak.space import load_space
from benchmarks.replay import METHODS, Design, Replay, SearchSetup
from benchmarks.replay._base import History
from benchmarks.replay.data import FamilyData, read_family
from benchmarks.replay.splits import Split, all_scores, history_for

ROOT = Path(__file__).resolve().parents[2]
TASKS = ["keel_bupa", "keel_iris", "keel_pima"]
# st_quantile draws 100,000 candidates per run (~3 s of CPU): slow.
ST_METHODS = ["st_zero_shot", "st_bounding_box", pytest.param("st_quantile", marks=pytest.mark.slow)]


def test_syne_tune_is_installed() -> None:
    missing = [
        name
        for name in ("syne_tune", "xgboost", "huggingface_hub", "dill")
        if importlib.util.find_spec(name) is None
    ]
    assert not missing, f"{missing} not installed: run scripts/setup.sh (it installs them with --no-deps)."


@pytest.fixture(scope="module")
def hgb() -> FamilyData:
    family = read_family(ROOT / "benchmarks" / "data" / "hgb.parquet")
    return replace(family, tasks={t: family.tasks[t] for t in TASKS})


def _history(family: FamilyData, test: str, regime: str) -> History:
    split = Split(test, [t for t in family.tasks if t != test])
    return history_for(split, regime, family, all_scores(family, regime, split.train))


def _run(family: FamilyData, method: str, history: History, test: str = "keel_bupa", seed: int = 0) -> Replay:
    data = family.tasks[test]
    replay = Replay(data, Design(family.space, data.params))
    METHODS[method]().search(replay, SearchSetup(family.space, seed, 5, history))
    return replay


@pytest.mark.parametrize("regime", ["dense", "sparse"])
@pytest.mark.parametrize("method", ST_METHODS)
def test_runs_the_budget_through_the_replay(hgb: FamilyData, method: str, regime: str) -> None:
    replay = _run(hgb, method, _history(hgb, "keel_bupa", regime))
    assert len(replay.trials) == 5
    assert len({t.config_id for t in replay.trials}) == 5
    assert all(t.complete and t.steps_read == t.n_steps for t in replay.trials)
    assert METHODS[method]().uses_history


def test_zero_shot_starts_with_the_config_of_best_mean_rank(hgb: FamilyData) -> None:
    history = _history(hgb, "keel_bupa", "dense")
    ids = sorted(history.configs)
    scores = np.array([[history.scores[t][cid] for cid in ids] for t in history.tasks])
    best = ids[int(np.argmin(rankdata(-scores, axis=1).mean(axis=0)))]
    assert _run(hgb, "st_zero_shot", history).trials[0].config_id == best


def test_bounding_box_proposes_inside_the_box_of_past_bests(hgb: FamilyData) -> None:
    from benchmarks.replay.syne_tune import SCHEDULERS, config_space, transfer_evaluations

    history = _history(hgb, "keel_bupa", "dense")
    bests = [history.configs[max(s, key=s.__getitem__)] for s in history.scores.values()]
    _, build = SCHEDULERS["st_bounding_box"]
    scheduler = build(config_space(hgb.space), transfer_evaluations(history, hgb.space), 0)
    for _ in range(5):
        config = scheduler.suggest().config
        for name, value in config.items():
            low, high = min(b[name] for b in bests), max(b[name] for b in bests)
            assert low - 1e-9 <= value <= high + 1e-9, (name, value, low, high)


def test_zero_shot_imputes_every_past_task_on_the_candidates_its_seed_draws(hgb: FamilyData) -> None:
    """Syne Tune's own draws for the seed, drawn once and shared by every past task's surrogate."""
    from syne_tune.config_space import Domain

    from benchmarks.replay.syne_tune import SCHEDULERS, config_space, transfer_evaluations

    domains = config_space(hgb.space)
    history = _toy_history(hgb, 3, 30)
    _, build = SCHEDULERS["st_zero_shot"]
    scheduler = build(domains, transfer_evaluations(history, hgb.space), 3)
    random_state = np.random.RandomState(3)
    drawn = [
        {k: v.sample(random_state=random_state) for k, v in domains.items() if isinstance(v, Domain)}
        for _ in range(5 ** len(domains))
    ]
    assert scheduler._hyperparameters.to_dict("records") == drawn
    assert scheduler._scores.shape == (3, len(drawn))


@pytest.mark.filterwarnings("ignore:The inplace keyword")  # Syne Tune's own get_config, on pandas 3
@pytest.mark.parametrize(("regime", "seed"), [("dense", 0), ("sparse", 0), ("sparse", 4)])
def test_zero_shot_picks_what_syne_tune_s_own_get_config_picks(
    hgb: FamilyData, regime: str, seed: int
) -> None:
    from syne_tune.optimizer.schedulers.transfer_learning.zero_shot import ZeroShotTransfer

    from benchmarks.replay.syne_tune import SCHEDULERS, config_space, transfer_evaluations

    domains = config_space(hgb.space)
    history = _toy_history(hgb, 4, 30 if regime == "sparse" else None)
    _, build = SCHEDULERS["st_zero_shot"]
    ours, theirs = (build(domains, transfer_evaluations(history, hgb.space), seed) for _ in range(2))
    for _ in range(60):
        assert ours.get_config() == ZeroShotTransfer.get_config(theirs)


def test_random_configs_are_the_values_syne_tune_draws() -> None:
    from syne_tune.config_space import choice, lograndint, loguniform, randint, uniform

    from benchmarks.replay.syne_tune import config_space, random_config_drawer

    every_kind = {
        "a": uniform(0.1, 0.9),
        "b": loguniform(1e-4, 10.0),
        "c": randint(1, 7),
        "d": lograndint(4, 256),
        "e": choice(["relu", "tanh", "gelu"]),
        "f": 3,
    }
    spaces = [every_kind, *(config_space(load_space(family)) for family in ("hgb", "mlp"))]
    for domains in spaces:
        draw, theirs, ours = random_config_drawer(domains), np.random.RandomState(5), np.random.RandomState(5)
        expected = [
            {k: v.sample(random_state=theirs) if hasattr(v, "sample") else v for k, v in domains.items()}
            for _ in range(300)
        ]
        drawn = [draw(ours) for _ in range(300)]
        assert drawn == expected
        assert [type(v) for v in drawn[0].values()] == [type(v) for v in expected[0].values()]
        assert ours.randint(1 << 30) == theirs.randint(1 << 30)  # the generators end in the same state


def _toy_history(family: FamilyData, n_tasks: int, per_task: int | None) -> History:
    """Past tasks that all prefer the largest learning rate; ``per_task`` configs each (all if None)."""
    ids = sorted(family.configs)
    rng = np.random.default_rng(0)
    scores = {}
    for t in range(n_tasks):
        seen = ids if per_task is None else sorted(rng.choice(ids, per_task, replace=False).tolist())
        scores[f"past{t}"] = {
            cid: 0.5 + 0.1 * np.log10(family.configs[cid]["learning_rate"]) + 0.01 * rng.normal()
            for cid in seen
        }
    return History("sparse" if per_task else "dense", family.configs, scores)


@pytest.mark.parametrize(
    ("method", "per_task"), [pytest.param("st_quantile", None, marks=pytest.mark.slow), ("st_zero_shot", 30)]
)
def test_first_proposals_follow_what_past_tasks_agree_on(
    hgb: FamilyData, method: str, per_task: int | None
) -> None:
    """Quantile-based transfer, and zero-shot through its surrogates in a sparse history."""
    replay = _run(hgb, method, _toy_history(hgb, 6, per_task))
    rates = [hgb.configs[t.config_id]["learning_rate"] for t in replay.trials]
    assert np.median(rates) > 0.15, rates  # top 30% of the log range [0.005, 0.5]


def _perturbed(family: FamilyData, tasks: set[str]) -> FamilyData:
    rng = np.random.default_rng(7)
    return replace(
        family,
        tasks={
            name: replace(data, val=rng.uniform(size=data.val.shape)) if name in tasks else data
            for name, data in family.tasks.items()
        },
    )


@pytest.mark.parametrize("method", ST_METHODS)
def test_same_seed_same_trials_whatever_the_test_task_holds(hgb: FamilyData, method: str) -> None:
    """The test task's curves reach the method only through its own trials (and seeds hold)."""

    def proposals(family: FamilyData) -> list[int]:
        return [t.config_id for t in _run(family, method, _history(family, "keel_bupa", "dense")).trials]

    baseline = proposals(hgb)
    assert proposals(_perturbed(hgb, {"keel_bupa"})) == baseline
    if method != "st_bounding_box":  # random search in a box: the box may not move
        assert proposals(_perturbed(hgb, {"keel_iris", "keel_pima"})) != baseline


def test_needs_a_history(hgb: FamilyData) -> None:
    data = hgb.tasks["keel_bupa"]
    with pytest.raises(ValueError, match="needs the history of past tasks"):
        METHODS["st_bounding_box"]().search(
            Replay(data, Design(hgb.space, data.params)), SearchSetup(hgb.space, 0, 5)
        )


def test_missing_syne_tune_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from autotweak.exceptions import MissingDependencyError
    from benchmarks.replay.syne_tune import SyneTuneSearch

    monkeypatch.setitem(sys.modules, "syne_tune.optimizer.schedulers.transfer_learning.zero_shot", None)
    with pytest.raises(MissingDependencyError, match=r"run scripts/setup\.sh"):
        SyneTuneSearch("st_zero_shot")
