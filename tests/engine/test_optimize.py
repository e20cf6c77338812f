from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState

import autotweak
import autotweak.engine._opening
import autotweak.engine._study
from autotweak.engine import PRUNERS, SAMPLERS
from autotweak.engine._study import ATTR
from autotweak.engine._summary import trial_compute
from autotweak.engine._worker import _call_style
from autotweak.exceptions import SpecError, StudyExistsError, StudyMismatchError
from autotweak.report import build_report
from tests.conftest import base_spec, objective
from tests.helpers import load, mlflow_runs

SAMPLER_CLASSES = {
    "tpe": "TPESampler",
    "random": "RandomSampler",
    "grid": "GridSampler",
    "qmc": "QMCSampler",
    "cmaes": "CmaEsSampler",
    "gp": "GPSampler",
    "meta": "MetaSampler",
}


def test_sampler_registry_is_complete():
    assert set(SAMPLERS) == set(SAMPLER_CLASSES)
    assert set(PRUNERS) == {"median", "percentile", "successive_halving", "hyperband", "learned", "none"}


@pytest.mark.parametrize("name", sorted(SAMPLER_CLASSES))
def test_each_sampler_is_wired_and_drives_the_search(home, make_experiment, name):
    args = {"n_points": 4} if name == "grid" else {}
    exp = make_experiment(
        name=f"s-{name}", sampler={"name": name, "args": args}, budget={"trials": 4}, base={}
    )
    used: list[str] = []
    original = optuna.Study.ask

    def spy(self, *a, **k):  # records which sampler class actually served each ask
        used.append(type(self.sampler).__name__)
        return original(self, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(optuna.Study, "ask", spy)
        result = autotweak.optimize(exp)
    assert result.summary.counts["complete"] == 4
    assert set(used) == {SAMPLER_CLASSES[name]}
    study = load(exp)
    assert study.user_attrs[ATTR.META]["sampler"]["class"].endswith(SAMPLER_CLASSES[name])
    if name == "grid":
        assert sorted(t.params["x"] for t in study.trials) == pytest.approx([-5.0, -5 / 3, 5 / 3, 5.0])


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("median", {"n_startup_trials": 3, "n_warmup_steps": 1}),
        ("percentile", {"percentile": 50.0, "n_startup_trials": 3, "n_warmup_steps": 1}),
        ("successive_halving", {"min_resource": 1}),
        ("hyperband", {"min_resource": 1}),
        ("none", {}),
    ],
)
def test_each_pruner_is_wired_and_stops_poor_trials(home, make_experiment, name, args):
    exp = make_experiment(
        name=f"p-{name}",
        objective=objective("curve"),
        base={"steps": 10},
        tweaks={"x": {"type": "float", "low": 0.0, "high": 1.0}},
        metric={"name": "acc", "direction": "maximize", "steps": 10},
        pruner={"name": name, "args": args},
        budget={"trials": 16},
    )
    result = autotweak.optimize(exp)
    pruned = [t for t in load(exp).trials if t.state == TrialState.PRUNED]
    assert len(pruned) == result.summary.counts["pruned"]
    if name == "none":
        assert not pruned
    else:
        assert pruned, f"{name} pruned nothing"
        assert all(max(t.intermediate_values) < 10 for t in pruned)
        assert result.summary.compute < 16


def test_exceptions_and_nan_become_failed_trials_and_the_study_finishes(home, make_experiment, mlflow_client):
    exp = make_experiment(
        objective=objective("flaky"),
        tweaks={"x": {"type": "categorical", "choices": [-3.0, 0.5, 1.5, 3.0]}},
        sampler="grid",
        budget={"trials": 12},
        base={},
    )
    result = autotweak.optimize(exp)
    assert result.stop_reasons == ["grid exhausted"]
    trials = load(exp).trials
    assert len(trials) == 4 and all(t.state.is_finished() for t in trials)
    raised = [t for t in trials if t.params["x"] > 2]
    nans = [t for t in trials if t.params["x"] < -2]
    assert len(raised) == len(nans) == 1
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    assert all(t.state == TrialState.FAIL for t in raised + nans)
    assert all("ValueError: x=" in t.user_attrs[ATTR.FAILURE] for t in raised)
    assert all("not a finite number" in t.user_attrs[ATTR.FAILURE] for t in nans)
    assert result.summary.counts["failed"] == len(raised) + len(nans)
    runs = mlflow_runs(mlflow_client, exp.name)
    tb_run = runs.children[raised[0].number]
    artifacts = [a.path for a in mlflow_client.list_artifacts(tb_run.info.run_id)]
    assert "traceback.txt" in artifacts
    text = Path(mlflow_client.download_artifacts(tb_run.info.run_id, "traceback.txt")).read_text()
    assert "Traceback" in text and "too large for this model" in text


def test_resume_continues_numbering_and_keeps_one_parent_run(home, make_experiment, mlflow_client):
    exp = make_experiment(budget={"trials": 3})
    autotweak.optimize(exp)
    autotweak.optimize(exp.with_overrides(budget=autotweak.Budget(trials=5)), resume=True)
    study = load(exp)
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4]
    assert study.user_attrs[ATTR.SPEC]["budget"]["trials"] == 5, "workers that join later see the new budget"
    runs = mlflow_runs(mlflow_client, exp.name)
    assert len(runs.parents) == 1 and sorted(runs.children) == [0, 1, 2, 3, 4]
    assert runs.parents[0].info.status == "FINISHED"


def test_resume_on_other_workers_runs_and_says_the_executor_changed(
    home, make_experiment, mlflow_client, caplog
):
    """Moving a study to more workers (or to spot instances) is no mismatch: it runs, and is said."""
    exp = make_experiment(budget={"trials": 2})
    autotweak.optimize(exp)
    parent = mlflow_runs(mlflow_client, exp.name).parents[0]
    assert json.loads(parent.data.tags["autotweak.meta.executor"]) == {"name": "inline", "workers": 1}
    more = exp.with_overrides(budget=autotweak.Budget(trials=4))
    with caplog.at_level(logging.INFO, logger="autotweak"):
        result = autotweak.optimize(more, resume=True, workers=2)
    assert result.summary.counts["complete"] == 4
    assert load(exp).user_attrs[ATTR.EXECUTOR] == {"name": "processes", "workers": 2}
    parent = mlflow_runs(mlflow_client, exp.name).parents[0]  # one parent run, saying the latest session
    assert json.loads(parent.data.tags["autotweak.meta.executor"]) == {"name": "processes", "workers": 2}
    history = [{"name": "inline", "workers": 1}, {"name": "processes", "workers": 2}]
    assert json.loads(parent.data.tags["autotweak.meta.executors"]) == history
    meta = Path(mlflow_client.download_artifacts(parent.info.run_id, "meta.json", str(home)))
    assert json.loads(meta.read_text())["executor"] == history[-1]
    said = "Ran on inline (workers=1) and resumed on processes (workers=2): 2 + 2 trials."
    assert said in build_report(load(exp)).to_markdown()
    assert (
        "study 'study' resumes on processes (workers=2); it last ran on inline (workers=1). Its trials stay "
        "comparable (the executor is not part of the setup a resume checks)"
    ) in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="autotweak"):
        autotweak.optimize(more.with_overrides(budget=autotweak.Budget(trials=5)), resume=True, workers=2)
    assert "resumes on" not in caplog.text, "the same executor again is not news"
    said = "Ran on inline (workers=1), resumed on processes (workers=2) and resumed on processes (workers=2)"
    assert f"{said}: 2 + 2 + 1 trials." in build_report(load(exp)).to_markdown(), "but it is a session"


def test_starting_an_existing_study_is_refused_with_the_way_out(home, make_experiment):
    exp = make_experiment(budget={"trials": 1})
    autotweak.optimize(exp)
    with pytest.raises(StudyExistsError, match=r"already exists.*autotweak resume study"):
        autotweak.optimize(exp)


def test_a_study_made_by_another_process_after_the_check_is_refused_and_kept(
    home, make_experiment, mlflow_client, monkeypatch
):
    """Two launches of one name at once: the second's create fails in Optuna; it must not drop the first's."""
    exp = make_experiment(budget={"trials": 2})
    autotweak.optimize(exp)  # the other process's study, made between this one's check and its create
    with monkeypatch.context() as raced, pytest.raises(StudyExistsError, match="already exists"):
        raced.setattr(autotweak.engine._study, "study_exists", lambda storage, name: False)
        raced.setattr(autotweak.engine._opening, "study_exists", lambda storage, name: False, raising=False)
        autotweak.optimize(exp)
    assert len(load(exp).trials) == 2, "the other process's study and its trials are kept"
    [parent] = mlflow_runs(mlflow_client, "study").parents
    assert parent.info.status == "FINISHED"


def test_resume_with_other_components_says_what_differs(home, make_experiment):
    exp = make_experiment(budget={"trials": 1})
    autotweak.optimize(exp)
    changed = make_experiment(budget={"trials": 2}, sampler="tpe")
    with pytest.raises(
        StudyMismatchError,
        match=r"sampler.name: stored 'random', now 'tpe'; sampler.class: stored '.*RandomSampler', now",
    ):
        autotweak.optimize(changed, resume=True)
    narrowed = make_experiment(
        tweaks={"x": {"type": "float", "low": 0, "high": 1}, "y": {"type": "categorical", "choices": [1, 2]}}
    )
    with pytest.raises(StudyMismatchError) as caught:
        autotweak.optimize(narrowed, resume=True)
    said = str(caught.value)
    assert "tweaks.params.x.low: stored -5.0, now 0.0; tweaks.params.x.high: stored 5.0, now 1.0" in said
    assert "tweaks.params.y: stored absent, now " in said, "a parameter added is named, not the whole space"
    assert "`autotweak resume study` reads it from the study" in said
    assert said.endswith("start a new study (another 'name' in the spec; `--name` on the command line).")


def test_resume_of_a_study_on_the_old_default_pruner_says_the_default_changed(home, make_experiment):
    autotweak.optimize(
        make_experiment(budget={"trials": 1}, pruner="median")
    )  # the default before 2026-11-28
    spec = base_spec(budget={"trials": 2})
    del spec["pruner"]  # a spec that names none
    with pytest.raises(StudyMismatchError) as caught:
        autotweak.optimize(autotweak.Experiment.from_dict(spec), resume=True)
    said = str(caught.value)
    assert "since 2026-11-28" in said and "add `pruner: median` to the spec" in said, said
    assert "pruner.top_k" not in said, "one line for the pruner, not each of the learned pruner's arguments"


def test_baseline_runs_first_and_is_reported(home, make_experiment):
    exp = make_experiment(base={"x": 1.0}, budget={"trials": 4})
    result = autotweak.optimize(exp)
    first = load(exp).trials[0]
    assert first.params == {"x": 1.0} and first.user_attrs[ATTR.BASELINE] is True
    assert result.summary.base_value == 0.0


def test_callable_objectives_in_both_styles_and_in_processes(home, make_experiment):
    from tests.objectives import config_only, quadratic

    one = autotweak.optimize(
        make_experiment(name="fn", objective=quadratic, budget={"trials": 3}), track=False
    )
    assert one.summary.counts["complete"] == 3
    two = autotweak.optimize(
        make_experiment(name="cfg", objective=config_only, budget={"trials": 3}), track=False
    )
    assert two.summary.counts["complete"] == 3
    procs = autotweak.optimize(
        make_experiment(name="procs", objective=quadratic, budget={"trials": 4}, execution={"workers": 2}),
        track=False,
    )
    assert procs.summary.counts["complete"] == 4


def test_wall_time_budget_stops_the_study(home, make_experiment):
    exp = make_experiment(
        objective=objective("marked"),
        base={"marker": str(home / "m.txt"), "sleep": 0.2},
        budget={"wall_time": 1.5},
    )
    result = autotweak.optimize(exp)
    assert result.stop_reasons == ["wall time"]
    # one worker of 0.2 s trials fits at most 8 in 1.5 s, start-up included, and finishes the
    # one running at the limit; a loaded machine fits fewer (even none): never the default 20
    assert sum(result.summary.counts.values()) <= 9


def test_compute_budget_counts_full_training_equivalents(home, make_experiment):
    exp = make_experiment(budget={"compute": 2.5}, base={})
    result = autotweak.optimize(exp)
    assert result.stop_reasons == ["compute"]
    assert result.summary.compute == pytest.approx(3.0)


def test_checkpoint_dir_is_per_trial(home, make_experiment):
    exp = make_experiment(
        objective=objective("checkpointed"),
        base={"marker": str(home / "m"), "sleep": 0.0, "steps": 2},
        budget={"trials": 2},
    )
    autotweak.optimize(exp)
    (folder,) = (home / "checkpoints").iterdir()
    assert folder.name.startswith("study-"), "the study's name and its own id"
    assert sorted(p.name for p in folder.iterdir()) == ["trial-0000", "trial-0001"]
    assert (folder / "trial-0001" / "step.txt").read_text() == "2"


def test_a_new_study_of_the_same_name_never_sees_an_earlier_ones_checkpoints(home, make_experiment):
    """Another storage, or a study deleted and made again: its trial 0 is not the old trial 0."""
    marker = home / "m"
    exp = make_experiment(
        objective=objective("checkpointed"),
        base={"marker": str(marker), "sleep": 0.0, "steps": 3},
        budget={"trials": 2},
    )
    autotweak.optimize(exp)
    autotweak.optimize(exp.with_overrides(storage=f"sqlite:///{home / 'other.db'}"))
    starts = [line.split()[2] for line in marker.read_text().splitlines()]
    assert starts == ["start=0"] * 4, "each trial of each study started from scratch"
    assert len(list((home / "checkpoints").iterdir())) == 2


def test_sqlite_urls_with_query_options_name_their_files_without_them(home, make_experiment, mlflow_client):
    """``?timeout=30`` once went into the file names: ``opt.db?timeout=30.<pid>.building``, then a crash."""
    exp = make_experiment(
        name="opts",
        budget={"trials": 2},
        storage=f"sqlite:///{home / 'opt.db'}?timeout=30",
        tracking_uri=f"sqlite:///{home / 'ml.db'}?timeout=30",
    )
    result = autotweak.optimize(exp)
    assert result.summary.counts["complete"] == 2
    assert (home / "opt.db").is_file() and (home / "ml.db").is_file()
    assert (home / "opt.opts.lock").is_file(), "the ask lock sits next to the storage"
    assert not [p.name for p in home.rglob("*") if "?" in p.name or "timeout" in p.name]
    assert (home / "artifacts" / "opts").is_dir(), "the artifacts sit next to the tracking store"


def optional_trial(config: dict[str, Any], trial: autotweak.Trial | None = None) -> float:
    """Reports only when given a trial, as a function also called by hand would."""
    if trial is not None:
        for step in range(1, 4):
            trial.report(config["x"] * step, step=step)
    return float(config["x"])


def test_an_objective_whose_trial_is_optional_still_gets_it(home, make_experiment):
    exp = make_experiment(objective=optional_trial, budget={"trials": 2})
    autotweak.optimize(exp, track=False)
    assert [len(t.intermediate_values) for t in load(exp).trials] == [3, 3]


@pytest.mark.parametrize(
    ("signature", "gets_trial"),
    [
        ("config, trial", True),
        ("config, trial=None", True),
        ("config, /, trial=None", True),
        ("*args", True),
        ("config, *rest", True),
        ("config", False),
        ("config, *, verbose=False", False),
        ("config=None", False),
    ],
)
def test_the_trial_is_passed_whenever_a_second_positional_argument_fits(signature, gets_trial):
    namespace: dict[str, Any] = {}
    exec(f"def f({signature}):\n    return locals()", namespace)
    called = _call_style(namespace["f"])({"x": 1}, "TRIAL")
    assert ("TRIAL" in str(called)) is gets_trial


def test_an_objective_workers_cannot_receive_is_refused_before_the_study_exists(home, make_experiment):
    scale = 2.0

    def closure(config: dict[str, Any]) -> float:
        return float(config["x"]) * scale

    for bad, name in ((lambda config: config["x"], "<lambda>"), (closure, "closure")):
        exp = make_experiment(objective=bad, execution={"workers": 2})
        with pytest.raises(
            SpecError, match=r"'objective' must be a function defined at the top level"
        ) as caught:
            autotweak.optimize(exp)
        assert name in str(caught.value) and "cannot be pickled" in str(caught.value)
        assert "workers: 1" in str(caught.value)
    assert not (home / "optuna.db").exists() and not (home / "artifacts").exists(), "nothing was created"
    fine = autotweak.optimize(make_experiment(objective=bad, execution={"workers": 1}), track=False)
    assert fine.summary.counts["complete"] == 6


def returns_text_or_bool(config: dict[str, Any]) -> Any:
    metrics = {"accuracy": 0.91, "precision": 0.88, "recall": 0.93}
    if int(config["i"]) == 6:
        raise SystemExit(2)  # a training script's argparse on a bad flag
    return {0: "0.7", 1: True, 2: 0.5, 3: {"loss": 0.2}, 4: None, 5: metrics}[int(config["i"])]


def test_text_a_bool_or_sys_exit_makes_a_failed_trial(home, make_experiment):
    exp = make_experiment(
        objective=returns_text_or_bool,
        base={},
        tweaks={"i": {"type": "categorical", "choices": [0, 1, 2, 3, 4, 5, 6]}},
        sampler="grid",
        budget={"trials": 7},
    )
    autotweak.optimize(exp, track=False)
    trials = {t.params["i"]: t for t in load(exp).trials}
    assert trials[2].state == TrialState.COMPLETE and trials[2].value == 0.5
    why = "the objective must return the metric 'loss' as a number, got"
    for i, said in (
        (0, f"{why} '0.7'"),
        (1, f"{why} True"),
        (3, f"{why} {{'loss': 0.2}} (a mapping: return its 'loss' value)"),
        (4, f"{why} None (a missing return statement?)"),
        (5, f"{why} {{'accuracy': 0.91, 'precision': 0.88 ...}} (a mapping: it has no 'loss' key)"),
        (6, "SystemExit: the objective called sys.exit(2)"),
    ):
        assert trials[i].state == TrialState.FAIL
        assert trials[i].user_attrs[ATTR.FAILURE] == said


def test_a_mapping_is_taken_as_the_experiment(home):
    result = autotweak.optimize(base_spec(name="as-dict", budget={"trials": 2}))
    assert result.summary.counts["complete"] == 2
    with autotweak.Study(base_spec(name="asked", objective=None, budget={"trials": 1})) as study:
        trial = study.ask()
        assert trial is not None
        study.tell(trial, 1.0)
    assert study.summary.counts["complete"] == 1


def test_best_config_is_the_full_config_and_best_params_the_tweaks(home, make_experiment):
    exp = make_experiment(
        base={"x": 0.0, "epochs": 8, "optim": {"lr": 0.1, "wd": 0.0}},
        tweaks={
            "x": {"type": "float", "low": -5.0, "high": 5.0},
            "optim.lr": {"type": "float", "low": 0.001, "high": 1.0},
            "act": {"type": "fixed", "value": "relu"},
        },
        budget={"trials": 3},
    )
    result = autotweak.optimize(exp)
    best = load(exp).trials[result.summary.best_number]
    assert result.best_params == best.params and set(best.params) == {"x", "optim.lr"}
    assert result.summary.best_params == best.params, "one name, one meaning: the summary's are params"
    assert not hasattr(result.summary, "best_config")
    assert result.best_config == {
        "x": best.params["x"],
        "epochs": 8,
        "optim": {"lr": best.params["optim.lr"], "wd": 0.0},
        "act": "relu",
    }
    from autotweak.cli import cli

    shown = CliRunner().invoke(cli, ["best", "study", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["config"] == result.best_config
    assert json.loads(shown.output)["params"] == result.best_params


def _ctrl_c_at_trial_1(config: dict[str, float], trial: autotweak.Trial) -> float:
    if trial.number == 1:
        raise KeyboardInterrupt  # what Ctrl-C raises in the user's code
    return config["x"]


def test_ctrl_c_stops_the_calling_script_after_closing_the_study(home, make_experiment):
    """A script's ``optimize()`` does not carry on as if it had finished; the result is on the error."""
    exp = make_experiment(name="cut-short", objective=_ctrl_c_at_trial_1, budget={"trials": 4})
    with pytest.raises(KeyboardInterrupt) as stopped:
        autotweak.optimize(exp)
    assert isinstance(stopped.value, autotweak.StudyInterrupted)
    result = stopped.value.result
    assert result.summary.interrupted and result.summary.counts["interrupted"] == 1
    assert result.stop_reasons == ["interrupted"] and result.best_value is not None
    assert "resume=True" in str(stopped.value) and "autotweak resume cut-short" in str(stopped.value)
    done = autotweak.optimize(exp, resume=True)  # runs the interrupted trial first, to the budget
    assert done.summary.counts["complete"] == 4 and not done.summary.interrupted


def _ctrl_c_at_trial_2(config: dict[str, float], trial: autotweak.Trial) -> float:
    if trial.number == 2:
        raise KeyboardInterrupt
    return config["x"]


def test_an_interrupted_grid_point_runs_on_resume(home, make_experiment):
    """Optuna's grid counts the interrupted attempt as visited: its queued retry must still run."""
    exp = make_experiment(
        name="grid-cut",
        objective=_ctrl_c_at_trial_2,  # the last of the 3 grid points
        sampler={"name": "grid", "args": {"n_points": 3}},
        budget={"trials": 10},
        baseline=False,
    )
    with pytest.raises(autotweak.StudyInterrupted):
        autotweak.optimize(exp)
    done = autotweak.optimize(exp, resume=True)
    complete = [t for t in load(exp).trials if t.state == TrialState.COMPLETE]
    assert sorted(t.params["x"] for t in complete) == [-5.0, 0.0, 5.0], "every grid point, the cut one too"
    assert done.stop_reasons == ["grid exhausted"]


def test_ctrl_c_while_the_workers_start_closes_the_study_as_an_interrupt(home, make_experiment, monkeypatch):
    """SIGTERM or Ctrl-C while the fork server starts the workers: the study stops as it does mid-run."""
    from autotweak.engine import _executors

    real = _executors.start_context()

    class Interrupted:
        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        def Process(self, *args: object, **kwargs: object) -> object:  # multiprocessing's name
            raise KeyboardInterrupt

    started = _executors.start_context
    monkeypatch.setattr(_executors, "start_context", Interrupted)
    exp = make_experiment(name="starting", execution={"workers": 2}, budget={"trials": 4})
    with pytest.raises(autotweak.StudyInterrupted) as stopped:
        autotweak.optimize(exp)
    result = stopped.value.result
    assert result.stop_reasons == ["interrupted"] and result.trials_run == 0
    assert "autotweak resume starting" in str(stopped.value)
    monkeypatch.setattr(_executors, "start_context", started)
    assert autotweak.optimize(exp, resume=True).summary.counts["complete"] == 4, "the study is intact"


_ran: list[int] = []


def _counting(config: dict[str, float], trial: autotweak.Trial) -> float:
    _ran.append(trial.number)
    return config["x"]


def test_ctrl_c_while_a_trial_opens_stops_before_its_objective_runs(home, make_experiment, monkeypatch):
    """SIGTERM or Ctrl-C between trials (asking, opening the record) must not run one more trial whole."""
    import os
    import signal

    from autotweak.engine._session import TrialSession

    begin = TrialSession.begin

    def begin_then_signal(self: TrialSession, trial: optuna.Trial, **kwargs: Any) -> Any:
        handle = begin(self, trial, **kwargs)
        if trial.number == 1:
            os.kill(os.getpid(), signal.SIGINT)  # the handler only notes it: no objective is running
        return handle

    monkeypatch.setattr(TrialSession, "begin", begin_then_signal)
    _ran.clear()
    exp = make_experiment(name="between", objective=_counting, budget={"trials": 3}, baseline=False)
    with pytest.raises(autotweak.StudyInterrupted) as stopped:
        autotweak.optimize(exp)
    assert _ran == [0], "trial 1's objective never started"
    assert stopped.value.result.summary.counts["interrupted"] == 1
    monkeypatch.setattr(TrialSession, "begin", begin)
    done = autotweak.optimize(exp, resume=True)
    assert len(_ran) == 3 and done.summary.counts["complete"] == 3  # trial 1 again, then one more


@pytest.mark.parametrize(
    ("state", "reported", "retry", "training", "charged"),
    [
        ("complete", (1, 20), False, 1, 1.0),
        ("complete", None, False, None, 1.0),  # an objective that never reports
        ("pruned", (1, 5), False, 1, 0.25),
        ("pruned", None, False, None, 0.0),
        ("complete", (11, 20), True, 1, 0.5),  # resumed after step 10: the first attempt paid for 1-10
        ("pruned", (11, 15), True, 1, 0.25),
        ("complete", (1, 20), True, 1, 1.0),  # a retry that started over
        ("complete", (0, 19), True, 0, 1.0),
        ("pruned", (11, 30), True, 1, 0.5),  # reports past the declared steps charge no more
        ("pruned", (0, 4), False, 0, 0.25),  # counted from 0: steps 0..4 are 5 steps
        ("pruned", (0, 4), True, 0, 0.25),  # a retry that started over, from 0
        ("complete", (11, 19), True, 0, 0.45),  # resumed after step 10 of 0..19: it ran 11..19
        ("complete", (1, 19), True, 0, 0.95),  # resumed after step 0 of 0..19: it ran 1..19
        ("pruned", (11, 15), True, 0, 0.25),  # 11..15 are 5 steps whichever way the training counts
        ("pruned", (11, 25), True, 0, 0.45),  # past the declared steps: to step 19, its last
    ],
)
def test_a_trial_is_charged_the_steps_it_ran(state, reported, retry, training, charged):
    assert trial_compute(state, reported, 20, retry=retry, training_first=lambda: training) == pytest.approx(
        charged
    )


@pytest.mark.parametrize(
    ("state", "reported", "retry", "steps"),
    [
        ("pruned", (0, 4), False, 20),
        ("pruned", (1, 4), True, 20),
        ("pruned", (3, 8), False, 20),  # its own first report, not a retry's
        ("pruned", (11, 15), True, 20),  # a resumed retry short of the end: charged alike either way
        ("complete", (11, 20), True, None),  # without metric.steps it is charged a full training
    ],
)
def test_a_retrys_earlier_attempts_are_read_only_where_they_change_its_charge(state, reported, retry, steps):
    def unread() -> int:
        raise AssertionError("the earlier attempts were read")

    trial_compute(state, reported, steps, retry=retry, training_first=unread)


def broken(config: dict[str, Any]) -> float:
    raise FileNotFoundError("data/train.csv")


def fails_until_x_is_large(config: dict[str, Any]) -> float:
    if config["x"] < 4:
        raise ValueError("diverged")
    return float(config["x"])


def test_a_worker_whose_first_trials_all_fail_stops_instead_of_spending_the_budget(
    home, make_experiment, caplog
):
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        result = autotweak.optimize(make_experiment(objective=broken, budget={"trials": 30}), track=False)
    assert result.stop_reasons == ["its first 5 trials failed"]
    assert result.summary.counts["failed"] == 5 and result.summary.counts["complete"] == 0
    said = [r.getMessage() for r in caplog.records if "no trial completed" in r.getMessage()]
    assert said == [
        "study 'study': no trial completed, 5 failed (1 worker(s) stopped because its first 5 trials "
        "failed); the first, trial 0, failed with: FileNotFoundError: data/train.csv. Fix the objective, "
        "then resume the study: optimize(..., resume=True) or `autotweak resume study`"
    ]
    assert result.first_failure == (0, "FileNotFoundError: data/train.csv"), "the CLI says it from the result"


def test_a_study_whose_failed_trials_spent_its_budget_is_told_the_resume_that_runs_more(
    home, make_experiment, caplog
):
    """A plain ``autotweak resume`` runs nothing then: the warning names the CLI error's ``--trials``."""
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        result = autotweak.optimize(make_experiment(objective=broken, budget={"trials": 2}), track=False)
    assert (result.stop_reasons, result.trials_counted) == (["trials"], 2)
    said = [r.getMessage() for r in caplog.records if "no trial completed" in r.getMessage()]
    assert said == [
        "study 'study': no trial completed, 2 failed; the first, trial 0, failed with: FileNotFoundError: "
        "data/train.csv. Fix the objective, then resume the study (its 2 trial(s) spent its budget; "
        "--trials is the study's total): `autotweak resume study --trials 4`"
    ]


def broken_with_a_sentence(config: dict[str, Any]) -> float:
    raise ValueError("the loss diverged at step 3.")


def test_a_failure_that_ends_with_a_period_is_quoted_with_one(home, make_experiment, caplog):
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        autotweak.optimize(
            make_experiment(objective=broken_with_a_sentence, budget={"trials": 2}), track=False
        )
    said = next(r.getMessage() for r in caplog.records if "no trial completed" in r.getMessage())
    assert "failed with: ValueError: the loss diverged at step 3. Fix the objective" in said


def test_once_a_trial_of_the_worker_completed_failures_do_not_stop_it(home, make_experiment):
    exp = make_experiment(objective=fails_until_x_is_large, base={"x": 4.5}, budget={"trials": 12})
    result = autotweak.optimize(exp, track=False)
    assert result.stop_reasons == ["trials"], "the base config (trial 0) completed"
    assert result.summary.counts["failed"] >= 5


def _checkpoint_then_ctrl_c(config: dict[str, float], trial: autotweak.Trial) -> float:
    (trial.checkpoint_dir / "step.txt").write_text("1")
    if trial.number == 0:
        raise KeyboardInterrupt
    return config["x"]


@pytest.mark.parametrize(
    ("method", "said"),
    [
        ("upload_checkpoint", "could not keep its checkpoint in run"),  # down when Ctrl-C comes
        ("end_trial", "could not write the record of trial 0"),  # down after the checkpoint went
    ],
)
def test_a_tracker_down_at_ctrl_c_does_not_crash_the_worker(
    home, make_experiment, monkeypatch, caplog, method: str, said: str
):
    """The study stops as interrupted, the trial queued again, the worker's failure to record warned of."""
    from autotweak.tracking import MlflowTracker

    def down(self: object, *args: object, **kwargs: object) -> None:
        raise ConnectionError("tracking server unreachable")

    monkeypatch.setattr(MlflowTracker, method, down)
    exp = make_experiment(name="down-loop", objective=_checkpoint_then_ctrl_c, budget={"trials": 2})
    with pytest.raises(autotweak.StudyInterrupted):
        autotweak.optimize(exp)
    stopped, queued = load(exp).trials
    assert stopped.state == TrialState.FAIL and queued.state == TrialState.WAITING
    assert queued.user_attrs[ATTR.RETRY_OF] == 0
    assert said in caplog.text
    if method == "upload_checkpoint":
        assert ATTR.CHECKPOINT_RUN not in queued.user_attrs, "no run holds its checkpoint"


def test_a_study_without_the_meta_sampler_does_not_import_the_meta_learner(home):
    """Only the meta sampler proposes; importing ``autotweak.meta`` took seconds at every study's close."""
    import subprocess
    import sys

    code = (
        "import sys, autotweak\n"
        "from tests.conftest import base_spec\n"
        "autotweak.optimize(base_spec(budget={'trials': 2}, sampler={'name': 'tpe'}))\n"
        "print('autotweak.meta' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=home, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == "False\n"
