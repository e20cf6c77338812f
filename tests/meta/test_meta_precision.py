"""Proposals reach the objective with the values the past tasks ran, and say what a spread means."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from autotweak import SearchSpace
from autotweak.cli import main
from autotweak.meta import Histories, MetaSampler, PastTrial, TaskHistory, fit_meta_model, load_meta_model
from tests.conftest import base_spec

SPACE = SearchSpace.from_dict(
    {
        "lr": {"type": "float", "low": 1e-3, "high": 0.5, "log": True},
        "frac": {"type": "float", "low": 0.2, "high": 1.0},
        "leaves": {"type": "int", "low": 4, "high": 256, "log": True},
    }
)
PAST = [0.06, 0.01, 0.123, 0.3, 0.0042, 0.02, 0.45, 0.0075]


def _histories(n_tasks: int) -> Histories:
    tasks = []
    for t in range(n_tasks):
        trials = tuple(
            PastTrial({"lr": lr, "frac": 0.7 + 0.01 * i, "leaves": 31}, -abs(lr - 0.06) - 0.01 * t * i)
            for i, lr in enumerate(PAST)
        )
        tasks.append(TaskHistory(f"past{t}", "maximize", trials))
    return Histories(tuple(tasks))


def _past_candidates(model: object) -> set[tuple[float, float]]:
    assert hasattr(model, "candidate") and hasattr(model, "units")
    configs = [model.candidate(i) for i in range(len(model.units))]
    return {(c["lr"], c["frac"]) for c in configs if c["leaves"] == 31}


def _old_file(model_path: Path, out: Path) -> Path:
    """The file as the previous version wrote it: its unit points as float32."""
    with np.load(model_path) as data:
        content = {name: data[name] for name in data.files}
    content["units"] = content["units"].astype(np.float32)
    np.savez_compressed(out, **content)  # type: ignore[arg-type]
    return out


def test_a_past_config_is_a_candidate_with_its_own_values_after_a_file_round_trip(tmp_path: Path) -> None:
    model = fit_meta_model(_histories(2), SPACE, n_design=16)
    loaded = load_meta_model(model.save(tmp_path / "m.npz"))
    expected = {(lr, round(0.7 + 0.01 * i, 12)) for i, lr in enumerate(PAST)}
    assert expected <= {(lr, round(frac, 12)) for lr, frac in _past_candidates(loaded)}
    assert {lr for lr, _ in _past_candidates(loaded)} == set(PAST)
    assert loaded.digest == model.digest


def test_a_file_of_the_previous_version_loads_with_its_digest_and_clean_values(tmp_path: Path) -> None:
    model = fit_meta_model(_histories(2), SPACE, n_design=16)
    old = load_meta_model(_old_file(model.save(tmp_path / "m.npz"), tmp_path / "old.npz"))
    assert old.digest == model.digest  # a study begun with the old file resumes with it
    assert {lr for lr, _ in _past_candidates(old)} == set(PAST)
    for i in range(len(old.units)):
        config = old.candidate(i)
        assert SPACE.to_unit(config) == pytest.approx(model.units[i].tolist(), abs=1e-6)
        assert not SPACE.invalid(config)


def test_the_sampler_serves_a_past_config_exactly(tmp_path: Path) -> None:
    model = fit_meta_model(_histories(2), SPACE, n_design=16)
    sampler = MetaSampler(load_meta_model(model.save(tmp_path / "m.npz")), seed=0)
    served = [p.params["lr"] for p in sampler.plan(len(sampler.model.units) if sampler.model else 0)]
    assert set(PAST) <= set(served)


def suggest_spec(tmp_path: Path, n_tasks: int) -> Path:
    """A spec whose meta-model was fit on ``n_tasks`` past tasks, for ``autotweak suggest``."""
    model_path = fit_meta_model(_histories(n_tasks), SPACE, n_design=16).save(tmp_path / "past.npz")
    spec = base_spec(
        name="past",
        tweaks=SPACE.to_dict(),
        base={},
        sampler={"name": "meta", "args": {"model": str(model_path)}},
    )
    path = tmp_path / "past.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_one_past_task_gives_no_spread(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = suggest_spec(tmp_path, 1)
    main(["suggest", str(path), "-k", "2"])
    printed = capsys.readouterr().out
    assert "± n/a (1 past task)" in printed and "± 0.00" not in printed
    assert printed.startswith("meta-model past.npz: 1 past task, "), printed.splitlines()[0]
    main(["suggest", str(path), "-k", "2", "--json"])
    shown = json.loads(capsys.readouterr().out)
    assert [p["uncertainty"] for p in shown] == [None, None]
    assert shown[0]["params"]["lr"] == 0.06
