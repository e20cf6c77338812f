"""The meta-model: fitting, its file (round trip, refused versions), fitting other spaces, proposals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autotweak import SearchSpace
from autotweak.meta import (
    Histories,
    MetaModelError,
    PastTrial,
    Proposer,
    TaskHistory,
    descriptor_weights,
    fit_meta_model,
    load_meta_model,
    resolve_meta_model,
)
from tests.meta._helpers import TOY_SPACE as SPACE


def _task(
    name: str, best_lr: float, *, n: int = 40, seed: int = 0, direction: str = "maximize"
) -> TaskHistory:
    rng = np.random.default_rng(seed)
    trials = []
    for i in range(n):
        config = SPACE.from_unit(rng.uniform(size=3).tolist())
        score = -abs(np.log10(config["lr"]) - np.log10(best_lr)) - 0.1 * (config["act"] == "tanh")
        value = float(score if direction == "maximize" else -score)
        trials.append(PastTrial(config, value, source=f"{name}#{i}"))
    return TaskHistory(name, direction, tuple(trials), descriptor={"n_rows": 100.0 * (1 + seed)})  # type: ignore[arg-type]


HISTORIES = Histories(
    (_task("a", 1e-3, seed=1), _task("b", 1e-3, seed=2, direction="minimize"), _task("c", 0.3, seed=3))
)


def test_fit_normalizes_each_task_and_predicts_every_candidate() -> None:
    model = fit_meta_model(HISTORIES, SPACE, n_design=32)
    assert model.tasks == ("a", "b", "c")
    assert model.scores.shape == (3, len(model.units)) and len(model.units) >= 32
    assert model.scores.min() >= 0.0 and model.scores.max() <= 1.0
    # "b" was minimized with the same optimum as "a": oriented, the two agree.
    assert np.corrcoef(model.scores[0], model.scores[1])[0, 1] > 0.8
    assert np.corrcoef(model.scores[0], model.scores[2])[0, 1] < 0.5
    best_for_a = model.candidate(int(model.scores[0].argmax()))
    assert abs(np.log10(best_for_a["lr"]) + 3) < 0.7


def test_tasks_too_small_or_flat_are_left_out_with_reasons() -> None:
    flat = TaskHistory(
        "flat", "maximize", tuple(PastTrial({"lr": 0.01, "depth": 2, "act": "relu"}, 1.0) for _ in range(6))
    )
    tiny = TaskHistory("tiny", "maximize", HISTORIES.tasks[0].trials[:2])
    model = fit_meta_model(Histories((*HISTORIES.tasks, flat, tiny)), SPACE, n_design=8)
    assert model.tasks == ("a", "b", "c")
    assert "1 x fewer than 5 complete trials" in model.info["skipped_tasks"]
    assert "1 x all trials scored the same" in model.info["skipped_tasks"]
    with pytest.raises(MetaModelError, match="no past task"):
        fit_meta_model(Histories((flat, tiny)), SPACE)


def test_file_round_trip(tmp_path: Path) -> None:
    model = fit_meta_model(HISTORIES, SPACE, n_design=16)
    path = model.save(tmp_path / "toy")
    assert path.name == "toy.npz"
    loaded = load_meta_model(path)
    assert loaded.tasks == model.tasks and loaded.space.to_dict() == SPACE.to_dict()
    assert np.allclose(loaded.scores, model.scores, atol=1e-6) and np.allclose(
        loaded.units, model.units, atol=1e-6
    )
    assert loaded.descriptors == model.descriptors
    assert loaded.info["n_tasks"] == 3


def _rewrite_header(path: Path, **changes: object) -> None:
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(str(arrays["header"])) | changes
    arrays["header"] = np.array(json.dumps(header))
    np.savez_compressed(path, **arrays)


def test_an_incompatible_version_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = fit_meta_model(HISTORIES, SPACE, n_design=8).save(tmp_path / "old.npz")
    _rewrite_header(path, format_version=99, autotweak_version="9.9.9")
    with pytest.raises(
        MetaModelError, match=r"'format_version' must be 1 .*got 99 \(written by autotweak 9\.9\.9\)"
    ):
        load_meta_model(path)


def test_other_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(MetaModelError, match=r"junk\.npz: must be a meta-model file"):
        load_meta_model(tmp_path / "junk.npz")
    path = fit_meta_model(HISTORIES, SPACE, n_design=8).save(tmp_path / "m.npz")
    _rewrite_header(path, kind="something else")
    with pytest.raises(MetaModelError, match="not an autotweak meta-model"):
        load_meta_model(path)


def test_a_narrowed_space_keeps_the_candidates_inside_it(tmp_path: Path) -> None:
    path = fit_meta_model(HISTORIES, SPACE, n_design=32).save(tmp_path / "m.npz")
    narrow = SPACE.extend(params={"lr": {"low": 1e-3, "high": 1e-1}})
    model = resolve_meta_model(path, narrow)
    assert model is not None and model.space is narrow
    lrs = [model.candidate(i)["lr"] for i in range(len(model.units))]
    assert min(lrs) >= 1e-3 and max(lrs) <= 1e-1
    other = SearchSpace.from_dict({"width": {"type": "int", "low": 1, "high": 4}})
    with pytest.raises(MetaModelError, match="do not fit the space"):
        resolve_meta_model(path, other)
    assert resolve_meta_model("none", SPACE) is None


def test_proposals_follow_the_past_tasks_that_rank_results_alike() -> None:
    model = fit_meta_model(HISTORIES, SPACE, n_design=64)
    proposer = Proposer(model)
    # The new task behaves like "c" (best lr 0.3): configs with a high lr scored better.
    tried = [SPACE.to_unit({"lr": lr, "depth": 3, "act": "relu"}) for lr in (1e-3, 0.03, 0.3)]
    proposal = proposer.propose(tried, [0.1, 0.5, 0.9])  # type: ignore[arg-type]
    weights = proposer.weights(proposer.nearest(tried), [0.1, 0.5, 0.9])  # type: ignore[arg-type]
    assert weights[2] > 0.9
    assert proposal.sources[0][0] == "c"
    assert proposal.params["lr"] > 0.03


def test_descriptor_weights_prefer_similar_tasks() -> None:
    model = fit_meta_model(HISTORIES, SPACE, n_design=8)
    weights = descriptor_weights(model, {"n_rows": 200.0})
    assert weights is not None and int(np.argmax(weights)) == 0
    assert descriptor_weights(model, {"unknown": 1.0}) is None


def test_describe_dataset_gives_sizes_balance_and_landmarkers() -> None:
    from sklearn.datasets import load_breast_cancer, load_iris

    from autotweak.meta import describe_dataset

    iris = describe_dataset(*load_iris(return_X_y=True))
    assert iris["n_classes"] == 3.0 and abs(iris["class_entropy"] - 1.0) < 1e-9
    assert abs(iris["log_features"] - np.log(4)) < 1e-9 and iris["binary_features"] == 0.0
    # iris is easy: every landmarker beats the majority class by far
    assert min(iris["stump"], iris["naive_bayes"], iris["nearest_neighbour"]) > 0.25
    cancer = describe_dataset(*load_breast_cancer(return_X_y=True))
    assert cancer["n_classes"] == 2.0 and 0.3 < cancer["minority_fraction"] < 0.4


def test_a_model_and_its_histories_print_as_one_line_each() -> None:
    model = fit_meta_model(HISTORIES, SPACE, n_design=32)
    assert repr(HISTORIES) == "Histories(3 task(s), 120 trial(s), 0 record(s) skipped)"
    assert (
        repr(model) == f"MetaModel(space 'toy', 3 past task(s), 120 trial(s), {len(model.units)} candidates)"
    )
