"""The meta-learner inside ``autotweak optimize`` and the CLI: proposals served, recorded, explained."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from mlflow import MlflowClient

import autotweak
from autotweak import SearchSpace
from autotweak.cli import main
from autotweak.engine._study import ATTR
from autotweak.meta import (
    GUARD_ATTR,
    PROPOSAL_ATTR,
    PROPOSALS_ATTR,
    Histories,
    PastTrial,
    TaskHistory,
    fit_meta_model,
    load_meta_model,
)
from autotweak.report import build_report
from tests.conftest import base_spec
from tests.helpers import load, mlflow_runs

SPACE = SearchSpace.from_dict({"x": {"type": "float", "low": -5.0, "high": 5.0}})


def _fit_model(folder: Path, peak: float) -> Path:
    """A meta-model from three past tasks whose loss is lowest near ``peak``."""
    rng = np.random.default_rng(0)
    tasks = []
    for i in range(3):
        xs = rng.uniform(-5, 5, 30)
        trials = tuple(PastTrial({"x": float(x)}, float((x - peak - 0.2 * i) ** 2)) for x in xs)
        tasks.append(TaskHistory(f"past{i}", "minimize", trials))
    return fit_meta_model(Histories(tuple(tasks)), SPACE, n_design=64).save(folder / f"toy{peak}.meta.npz")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``model_file(peak=1.0)``: the file of :func:`_fit_model`'s model, fit once per module (only read)."""
    folder = tmp_path_factory.mktemp("meta-models")
    return functools.cache(lambda peak=1.0: _fit_model(folder, peak))


def test_optimize_serves_and_records_the_proposals(home, make_experiment, tmp_path, model_file):
    model = model_file()
    exp = make_experiment(
        name="warm",
        sampler={"name": "meta", "args": {"model": str(model), "n_meta": 3}},
        budget={"trials": 6},
    )
    result = autotweak.optimize(exp)
    study = load(exp)
    proposals = study._storage.get_study_system_attrs(study._study_id)[PROPOSALS_ATTR]
    # trial 0 is the base config (baseline), the next three are the meta-learner's
    assert [p["trial_number"] for p in proposals] == [1, 2, 3]
    assert abs(study.trials[1].params["x"] - 1.2) < 1.0
    assert all(p["state"] == "complete" and p["rank"] >= 1 for p in proposals)
    assert {s["task"] for p in proposals for s in p["sources"]} <= {"past0", "past1", "past2"}
    fitted = load_meta_model(model)
    for p in proposals:  # whether each source task ran the config, as the model's mask says
        (index,) = [i for i in range(len(fitted.units)) if fitted.candidate(i) == p["params"]]
        rows = [fitted.tasks.index(s["task"]) for s in p["sources"]]
        assert [s["measured"] for s in p["sources"]] == [fitted.was_measured(row, index) for row in rows]
    assert "Negative-transfer guard: did not trip" in build_report(study).to_markdown()

    client = MlflowClient(tracking_uri=result.tracking_uri)
    parent = mlflow_runs(client, "warm").parents[0]
    assert parent.data.metrics["meta_proposals"] == 3
    assert parent.data.metrics["meta_best_proposal_rank"] == min(p["rank"] for p in proposals)
    local = client.download_artifacts(parent.info.run_id, "meta/proposals.json", str(tmp_path))
    logged = json.loads(Path(local).read_text())
    assert [p["trial_number"] for p in logged] == [1, 2, 3]
    assert [[s["measured"] for s in p["sources"]] for p in logged] == [
        [s["measured"] for s in p["sources"]] for p in proposals
    ]


def test_without_a_fitting_model_meta_is_tpe(home, make_experiment):
    exp = make_experiment(name="cold", sampler={"name": "meta"}, budget={"trials": 3})
    autotweak.optimize(exp)
    study = load(exp)
    assert PROPOSALS_ATTR not in study._storage.get_study_system_attrs(study._study_id)
    assert len(study.trials) == 3


def test_a_model_for_another_space_is_refused_before_any_compute(home, make_experiment, tmp_path):
    other = SearchSpace.from_dict({"y": {"type": "int", "low": 1, "high": 3}})
    histories = Histories(
        (TaskHistory("t", "maximize", tuple(PastTrial({"y": y % 3 + 1}, float(y)) for y in range(6))),)
    )
    path = fit_meta_model(histories, other, n_design=4).save(tmp_path / "other.npz")
    with pytest.raises(autotweak.SpecError, match=r"'sampler.args' .*do not fit the space"):
        make_experiment(name="bad", sampler={"name": "meta", "args": {"model": str(path)}})


def test_meta_fit_and_suggest_from_the_command_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "hgb.npz"
    table = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "hgb.parquet"
    main(["meta", "fit", "--space", "hgb", "--table", str(table), "--out", str(out)])
    printed = capsys.readouterr().out
    assert "read 47 task(s), 12032 trial(s); no record skipped" in printed
    assert out.exists()
    spec = tmp_path / "exp.yaml"
    spec.write_text(
        "name: s\nobjective: examples.sklearn_wine:train\ntweaks: hgb\n"
        "metric: {name: acc, direction: maximize}\n"
        f"sampler: {{name: meta, args: {{model: {out}}}}}\n"
    )
    main(["suggest", str(spec), "-k", "3", "--json"])
    proposals = json.loads(capsys.readouterr().out)
    assert len(proposals) == 3
    assert len({json.dumps(p["params"], sort_keys=True) for p in proposals}) == 3
    assert all(0 <= p["predicted"] <= 1 and len(p["sources"]) == 3 for p in proposals)


@pytest.mark.parametrize("baseline", [True, False])
def test_suggest_shows_what_optimize_runs_first(home, tmp_path, capsys, baseline, model_file):
    """The first proposal shown is the one the study runs (after the base config, if it runs)."""
    sampler = {"name": "meta", "args": {"model": str(model_file(peak=-2.0)), "n_meta": 3}}
    spec = base_spec(
        name="planned", base={"x": -2.0}, sampler=sampler, budget={"trials": 4}, baseline=baseline
    )
    path = tmp_path / "planned.yaml"
    path.write_text(yaml.safe_dump(spec))
    main(["suggest", str(path), "-k", "4", "--json"])
    shown = json.loads(capsys.readouterr().out)
    main(["optimize", str(path)])
    capsys.readouterr()
    served = load(autotweak.load_experiment(path)).trials[1 if baseline else 0]
    assert served.params == shown[0]["params"]
    assert served.system_attrs[PROPOSAL_ATTR]["params"] == shown[0]["params"]
    main(["suggest", str(path), "-k", "4"])
    printed = capsys.readouterr().out
    assert ("after the base config" in printed) is baseline
    assert "from the study's second result on its proposals follow those results" in printed
    assert "optimize serves the first 3 (sampler.args.n_meta), then TPESampler" in printed


def test_a_descriptor_entry_point_sets_the_prior(home, make_experiment, tmp_path, monkeypatch, model_file):
    model = model_file()
    (tmp_path / "describe_mod.py").write_text("def describe():\n    return {'n_rows': 3.0}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sampler = {"name": "meta", "args": {"model": str(model), "descriptor": "describe_mod:describe"}}
    exp = make_experiment(name="described", sampler=sampler, budget={"trials": 2})
    autotweak.optimize(exp)
    with pytest.raises(
        autotweak.SpecError, match=r"descriptor.*must be a mapping or 'module:function', got 3"
    ):
        make_experiment(
            name="bad-descriptor", sampler={"name": "meta", "args": {"model": str(model), "descriptor": 3}}
        )


def test_a_tripped_guard_is_reported(home, make_experiment, tmp_path, model_file):
    """A prior that ranks this study's results backwards trips the guard, and the report says so."""
    exp = make_experiment(
        name="backwards",
        metric={"name": "loss", "direction": "maximize", "steps": 5},  # the past minimized it
        sampler={"name": "meta", "args": {"model": str(model_file()), "n_meta": 8}},
        budget={"trials": 8},
    )
    result = autotweak.optimize(exp)
    study = load(exp)
    guard = study._storage.get_study_system_attrs(study._study_id)[GUARD_ATTR]
    assert guard["tau"] < 0 and guard["results"] >= 5
    text = build_report(study).to_markdown()
    assert f"Negative-transfer guard: tripped after {guard['results']} results" in text
    assert f"(Kendall's tau {guard['tau']}, below 0.0; on {guard['results']} results one pair" in text

    client = MlflowClient(tracking_uri=result.tracking_uri)
    parent = mlflow_runs(client, "backwards").parents[0]
    assert parent.data.tags["autotweak.meta_guard"] == "tripped"
    assert parent.data.metrics["meta_guard_tau"] == guard["tau"]
    assert parent.data.metrics["meta_guard_results"] == guard["results"]
    local = client.download_artifacts(parent.info.run_id, "meta/guard.json", str(tmp_path))
    assert json.loads(Path(local).read_text()) == {"tripped": True, **guard}


def test_an_untripped_guard_is_recorded_on_the_parent_run(home, make_experiment, model_file):
    exp = make_experiment(
        name="forwards", sampler={"name": "meta", "args": {"model": str(model_file()), "n_meta": 2}}
    )
    result = autotweak.optimize(exp)
    client = MlflowClient(tracking_uri=result.tracking_uri)
    parent = mlflow_runs(client, "forwards").parents[0]
    assert parent.data.tags["autotweak.meta_guard"] == "not tripped"
    assert "meta_guard_tau" not in parent.data.metrics


def _interrupted_at_trial_1(config: dict[str, float], trial: autotweak.Trial) -> float:
    if trial.number == 1:
        raise KeyboardInterrupt  # what Ctrl-C raises in the user's code
    return (config["x"] - 1.0) ** 2


def test_an_interrupted_proposal_runs_again_first_when_the_study_resumes(home, make_experiment, model_file):
    exp = make_experiment(
        name="cut",
        objective=_interrupted_at_trial_1,
        sampler={"name": "meta", "args": {"model": str(model_file()), "n_meta": 2}},
        budget={"trials": 4},
    )
    with pytest.raises(autotweak.StudyInterrupted) as stopped:
        autotweak.optimize(exp)
    first = stopped.value.result
    assert first.summary.interrupted and first.summary.counts["interrupted"] == 1
    assert first.summary.counts["failed"] == 0
    cut = load(exp).trials[1]
    assert PROPOSAL_ATTR in cut.system_attrs and cut.user_attrs[ATTR.INTERRUPTED]

    autotweak.optimize(exp, resume=True)
    study = load(exp)
    retry = study.trials[2]
    assert retry.user_attrs[ATTR.RETRY_OF] == 1 and retry.params == cut.params
    assert retry.state.name == "COMPLETE"
    proposals = study._storage.get_study_system_attrs(study._study_id)[PROPOSALS_ATTR]
    assert [p["trial_number"] for p in proposals] == [2, 3], "the retry runs the proposal; n_meta is kept"
    assert proposals[0]["params"] == cut.system_attrs[PROPOSAL_ATTR]["params"]
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 4, "the interrupted trial costs no budget"


def test_the_report_says_the_guard_was_not_checked_before_it_had_enough_results():
    from autotweak.report._proposals import guard_note

    study = optuna.create_study()
    for x in range(4):
        study.add_trial(optuna.trial.create_trial(value=float(x)))
    assert guard_note(study) == (
        "Negative-transfer guard: not checked (it judges the past once 5 results are in; this study has 4)."
    )
    study.add_trial(optuna.trial.create_trial(value=9.0))
    assert guard_note(study).startswith("Negative-transfer guard: did not trip")
