"""The report's analysis: ablation path, compute against the grid, workers, meta-learner proposals."""

from __future__ import annotations

import json
import socket
from typing import Any

import optuna
import pytest
from mlflow import MlflowClient

import autotweak
from autotweak._locations import resolve_storage_url
from autotweak._trial_costs import ESTIMATE_ATTR, merged_estimate
from autotweak.engine._study import ATTR
from autotweak.engine._summary import frozen_compute, steps_of
from autotweak.report import build_report
from autotweak.report._ablation import run_ablation
from tests.helpers import load, mlflow_runs
from tests.report.helpers import run_cli
from tests.report.report_objectives import additive, conditional, ref

TWEAKS = {
    "a": {"type": "categorical", "choices": [0, 1]},
    "b": {"type": "categorical", "choices": [0, 1]},
    "c": {"type": "categorical", "choices": ["u", "v"]},
}


def _spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "abl",
        "objective": ref("additive"),
        "base": {"a": 0, "b": 0, "c": "u"},
        "tweaks": TWEAKS,
        "metric": {"name": "score", "direction": "maximize", "steps": 3},
        "sampler": "grid",
        "budget": {"trials": 9},
    }
    return {**spec, **overrides}


def _run_all(study: autotweak.Study, configs: int) -> None:
    for _ in range(configs):
        trial = study.ask()
        assert trial is not None
        study.tell(trial, additive(trial.config, trial))


def test_ablation_measured_on_the_full_grid(home, make_experiment):
    exp = make_experiment(**_spec())
    with autotweak.Study(exp) as study:
        _run_all(study, 9)
    report = build_report(load(exp))
    assert report.ablation is not None
    steps = report.ablation.steps
    assert [s.tweak for s in steps] == ["b", "a", "c"], "the tweak that helps most comes first"
    assert [s.contribution for s in steps] == [2.0, 1.0, 0.5]
    assert report.ablation.start.value == 0.0 and report.ablation.start.measured
    assert all(s.measured for s in steps)
    text = report.to_markdown()
    assert "| b | 0 → 1 | 2 |  | measured |" not in text  # contributions are filled in
    assert "| b | 0 → 1 | 2 | +2 | measured |" in text
    assert "| c | u → v | 3.5 | +0.5 | measured |" in text
    assert "estimated |" not in text
    print(text)


def test_ablation_estimated_then_measured_with_ablate(home, make_experiment):
    median = {"name": "median", "args": {"n_startup_trials": 1, "n_warmup_steps": 0}}
    exp = make_experiment(
        **_spec(
            objective=ref("watching"), sampler={"name": "random"}, budget={"trials": 6}, seed=3, pruner=median
        )
    )
    with autotweak.Study(exp) as study:
        while (trial := study.ask()) is not None:
            study.tell(
                trial, additive(trial.config, trial) if trial.params != {"a": 1, "b": 1, "c": "v"} else 0.0
            )
    report = build_report(load(exp))
    assert report.ablation is not None
    estimated = report.ablation.unmeasured()
    text = report.to_markdown()
    assert estimated, "with 6 of 8 configs and one off-pattern, some steps are estimated"
    assert text.count("| estimated |") == len(estimated)

    n_before = len(load(exp).trials)
    cli = run_cli(home, "report", "abl", "--ablate", "5")
    study = load(exp)
    ran = [t for t in study.trials if t.user_attrs.get("autotweak.ablation")]
    assert 1 <= len(ran) <= 5
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in ran), "ablation trials are not pruned"
    assert study.user_attrs["autotweak.meta"]["pruner"]["name"] == "median", "the study's setup is kept"
    # while they ran, a worker joining the study would have read its own pruner, not "none"
    assert {t.user_attrs.get("stored_pruner") for t in ran} == {"median"}
    assert study.user_attrs["autotweak.spec"]["budget"] == {"trials": 6}
    assert len(study.trials) == n_before + len(ran)
    after = build_report(study)
    assert after.ablation is not None
    assert all(p.measured for p in [after.ablation.start, *after.ablation.steps])
    assert "| estimated |" not in cli.stdout
    runs = mlflow_runs(MlflowClient(f"sqlite:///{home / 'mlflow.db'}"), "abl").children
    tagged = sorted(n for n, run in runs.items() if run.data.tags.get("autotweak.ablation") == "true")
    assert tagged == [t.number for t in ran], "ablation runs are told apart from the search's in MLflow"
    assert f"ran {len(ran)} ablation trial(s)" in cli.stdout
    # They spend none of the study's budget: a resume still has the trials and compute it had.
    from autotweak.engine._budget import BudgetView
    from autotweak.engine._summary import summarize

    steps = exp.metric.steps
    search = [t for t in study.trials if not t.user_attrs.get("autotweak.ablation")]
    assert BudgetView.read(study, steps, need_compute=False).counted == n_before, "the SQL count"
    assert BudgetView.of(study.trials, steps) == BudgetView.of(search, steps)
    assert sum(summarize(study).counts.values()) == n_before, "status and the parent run count the search"


def test_compute_against_the_grid_and_pruning_saved(home, make_experiment):
    exp = make_experiment(**_spec(sampler={"name": "random"}, budget={"trials": 5}))
    with autotweak.Study(exp) as study:
        for state, last in (("complete", 3), ("pruned", 1), ("pruned", 2), ("failed", 1), ("complete", 3)):
            trial = study.ask()
            assert trial is not None
            for step in range(1, last + 1):
                trial.report(0.1 * step, step)
            study.tell(trial, 1.0 if state == "complete" else None, state=state)
    stored = load(exp)
    steps = steps_of(stored)
    pruned = [t for t in stored.trials if t.state == optuna.trial.TrialState.PRUNED]
    used = sum(frozen_compute(t, steps) for t in stored.trials)
    report = build_report(stored)
    account = report.account
    assert account is not None
    assert account.grid_size == 8, "random sampler: compared with the space's grid, 2 x 2 x 2 choices"
    assert account.used == used == report.summary.compute
    assert account.pruned == 2 and abs(account.pruning_saved - (2 - (1 / 3 + 2 / 3))) < 1e-9
    assert len(pruned) == 2
    text = report.to_markdown()
    assert f"Compute used: {used:.2f} full trainings over 5 trials." in text
    assert f"this study used {used / 8:.1%} of it" in text
    assert "pruning saved 1.00 full trainings" in text
    assert "4 values per numeric parameter" in text


def test_grid_sampler_is_compared_with_its_own_grid(home, make_experiment):
    tweaks = {
        "x": {"type": "float", "low": 0.0, "high": 1.0},
        "c": {"type": "categorical", "choices": [1, 2]},
    }
    exp = make_experiment(
        name="g",
        tweaks=tweaks,
        base={},
        sampler={"name": "grid", "args": {"n_points": 3}},
        budget={"trials": 2},
    )
    autotweak.optimize(exp)
    report = build_report(load(exp))
    assert report.account is not None and report.account.grid_size == 6
    assert "the grid sampler's own grid, 3 values per numeric parameter" in report.to_markdown()


def test_time_and_dollars_per_worker_type(home, make_experiment):
    exp = make_experiment(**_spec(sampler={"name": "random"}, budget={"trials": 4}))
    with autotweak.Study(exp) as study:
        for i in range(4):
            trial = study.ask()
            assert trial is not None
            if i % 2:  # a trial of a spot session, whose machine recorded its instance type
                trial.set_user_attr(ATTR.SESSION, "spot1")
                trial.set_user_attr("autotweak.cost_usd", 0.25 * i)
            study.tell(trial, 1.0)
        machine = {"instance_type": "g5.xlarge", "host": "ip-10-0-0-7", "session": "spot1"}
        study.optuna_study.set_user_attr("autotweak.machine.i-0abc", machine)
        # the spot launcher's records: a cost per trial number and the study's whole bill
        study.optuna_study.set_user_attr("autotweak.trial_costs_usd", {"2": 0.5})
        study.optuna_study.set_user_attr("autotweak.cost_usd", 2.0)
    stored = load(exp)
    report = build_report(stored)
    rows = {w.worker: w for w in report.workers}
    host = socket.gethostname()  # from the trials' MLflow runs
    assert set(rows) == {"g5.xlarge", f"cloud ({host})", f"local ({host})"}
    assert rows["g5.xlarge"].trials == 2 and rows["g5.xlarge"].dollars == 0.25 + 0.75
    assert rows[f"cloud ({host})"].trials == 1 and rows[f"cloud ({host})"].dollars == 0.5
    assert rows[f"local ({host})"].trials == 1 and rows[f"local ({host})"].dollars is None
    walls = {t.number: (t.datetime_complete - t.datetime_start).total_seconds() for t in stored.trials}
    assert abs(rows["g5.xlarge"].wall_s - walls[1] - walls[3]) < 1e-6
    text = report.to_markdown()
    assert "| g5.xlarge | 2 |" in text and "| $1.00 |" in text
    assert "Dollars as recorded by the cloud workers: $1.50 for the trials' own time." in text
    assert "The study's instances cost $2.00 in all, boot and idle time included." in text
    # Two sessions' launches cut short before their instances' price tags: billed at an upper bound.
    stored.set_user_attr(ESTIMATE_ATTR, merged_estimate(merged_estimate(None, [0.1]), [0.1234567]))
    assert (
        "The study's instances cost $2.00 in all, boot and idle time included (includes 2 instance(s) "
        "priced at most $0.1235/h: their price was never read)."
    ) in build_report(load(exp)).to_markdown()


@pytest.mark.parametrize("stored_as", ["list", "json"])
def test_meta_learner_proposals_and_how_they_scored(home, make_experiment, stored_as):
    exp = make_experiment(**_spec())
    proposed = [{"a": 0, "b": 1, "c": "u"}, {"a": 1, "b": 0, "c": "v"}, {"a": 1, "b": 1, "c": "v"}]
    with autotweak.Study(exp) as study:
        optuna_study = study.optuna_study
        for params in proposed[:2]:  # queued behind the baseline, as the meta-learner's warm starts are
            optuna_study.enqueue_trial(params)
        _run_all(study, 2)  # the baseline (trial 0) and the first proposal (trial 1)
        pruned = study.ask()
        assert pruned is not None and pruned.params == proposed[1]
        pruned.report(0.4, 1)
        study.tell(pruned, state="pruned")
        _run_all(study, 2)
        proposals = [
            {
                "params": proposed[0],
                "predicted": 2.2,
                "uncertainty": 0.3,
                "trial_number": 1,
                "sources": [
                    {"task": "mnist-mlp", "similarity": 0.81, "score": 0.97, "measured": True},
                    {"task": "svhn-cnn", "similarity": 0.6, "score": 0.91, "measured": False},
                    {"task": "cifar-cnn", "similarity": 0.4},
                ],
            },
            {
                "params": proposed[1],
                "predicted": 1.9,
                "uncertainty": 0.2,
                "sources": [{"task": "mnist-mlp", "similarity": 1.0, "score": 0.5}],  # an older record
                "trial_number": 2,
            },
            {
                "params": proposed[2],
                "predicted": 3.0,
                "uncertainty": 0.5,
                "sources": [],
                "trial_number": None,
            },
        ]
        value = proposals if stored_as == "list" else json.dumps(proposals)  # the meta-learner stores a list
        optuna_study._storage.set_study_system_attr(optuna_study._study_id, "autotweak.meta_proposals", value)
    stored = load(exp)
    assert stored.trials[1].params == proposed[0] and stored.trials[1].value == 2.0
    complete = optuna.trial.TrialState.COMPLETE
    values = sorted((t.value for t in stored.trials if t.state == complete), reverse=True)
    rank = values.index(2.0) + 1
    text = build_report(stored).to_markdown()
    assert "## Meta-learner proposals and how they scored" in text
    sources = (
        "mnist-mlp (similarity 0.81, score 0.97 measured), svhn-cnn (similarity 0.60, score 0.91 predicted), "
        "cifar-cnn (similarity 0.40)"
    )
    row = f"| 1 | a=0, b=1, c=u | 2.2 ± 0.3 | 2 | {rank} of {len(values)} | 1 | {sources} |"
    assert row in text, text
    older = "mnist-mlp (similarity 1.00, score 0.50, not known if measured or predicted)"
    assert f"| 2 | a=1, b=0, c=v | 1.9 ± 0.2 | pruned at step 1 (0.4) | — | 2 | {older} |" in text
    assert "'measured' where that task ran the config" in text
    assert "| 3 | a=1, b=1, c=v | 3 ± 0.5 | not run | — | — |  |" in text


def test_no_proposals_section_without_the_attr(home, make_experiment):
    exp = make_experiment(**_spec(budget={"trials": 2}))
    with autotweak.Study(exp) as study:
        _run_all(study, 2)
    assert "Meta-learner" not in build_report(load(exp)).to_markdown()


@pytest.mark.parametrize("base", [{"m": {"a": 0, "b": 0}}, {"m.a": 0, "m.b": 0}], ids=["nested", "flat"])
def test_ablation_starts_from_dotted_base_values(base: dict[str, Any]) -> None:
    """README: dotted tweak names set nested values, so the base may give ``m.a`` as ``m: {a: ...}``."""
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import create_trial

    from autotweak.report import ablation_path

    study = optuna.create_study(direction="maximize")
    dists = {"m.a": CategoricalDistribution([0, 1]), "m.b": CategoricalDistribution([0, 1])}
    for a in (0, 1):
        for b in (0, 1):
            study.add_trial(create_trial(params={"m.a": a, "m.b": b}, distributions=dists, value=a + 2 * b))
    path = ablation_path(study, base)
    assert path is not None
    assert path.held == [], "both tweaks are set by the base"
    assert path.configs[0] == {"m.a": 0, "m.b": 0}
    assert (path.start.value, path.start.measured) == (0.0, True)
    assert [(s.tweak, s.before, s.after, s.contribution) for s in path.steps] == [
        ("m.b", 0, 1, 2.0),
        ("m.a", 0, 1, 1.0),
    ]


def test_a_base_config_measured_by_ablate_is_the_baseline_of_the_report(home, make_experiment):
    """A study without a baseline trial gets one from ``--ablate``: the report then compares with it."""
    exp = make_experiment(**_spec(baseline=False, sampler={"name": "random"}, budget={"trials": 4}, seed=3))
    base = {"a": 0, "b": 0, "c": "u"}
    with autotweak.Study(exp) as study:
        while (trial := study.ask()) is not None:
            study.tell(trial, additive(trial.config, trial))
    before = build_report(load(exp))
    assert before.summary.base_value is None and all(t.params != base for t in load(exp).trials)
    assert "there is no baseline to compare with" in before.to_markdown()

    ran = run_ablation(load(exp), 8, storage=resolve_storage_url(None), tracking_uri=None)
    after = build_report(load(exp))
    assert ran >= 1 and after.ablation is not None and after.ablation.start.measured
    assert after.summary.base_value == after.ablation.start.value == 0.0
    text = after.to_markdown()
    assert "there is no baseline to compare with" not in text
    best = after.summary.best_value
    assert after.gain is not None and after.gain > 0 and best is not None
    way = "lower" if best < 0 else "higher"
    assert f"Base config: 0; the best is {abs(best):.6g} {way} (better)." in text
    listed = run_cli(home, "status").stdout
    assert f"{exp.name}: 4 trials, best {best:.6g}" in listed, "the ablation trials are not the search's"


def test_the_tweak_table_reads_dotted_tweaks_from_a_nested_base(home, make_experiment):
    """The base gives ``m.a`` as ``m: {a: 0}``: the table shows 0 as its base, not a dash."""
    tweaks = {
        "m.a": {"type": "categorical", "choices": [0, 1]},
        "m.b": {"type": "categorical", "choices": [0, 1]},
    }
    exp = make_experiment(
        name="nested",
        objective=None,
        base={"m": {"a": 0, "b": 1}},
        tweaks=tweaks,
        metric={"name": "score", "direction": "maximize"},
        sampler={"name": "grid"},
        budget={"trials": 4},
    )
    with autotweak.Study(exp) as study:
        while (trial := study.ask()) is not None:
            study.tell(trial, trial.config["m"]["a"] + 2 * trial.config["m"]["b"])
    report = build_report(load(exp))
    assert report.changed == {"m.a": (0, 1)}, "m.b is 1 in the base and in the best"


def _two_tweaks(search: dict[tuple[int, int], float], ablation: dict[str, Any]) -> optuna.Study:
    """A study over tweaks a, b in {0, 1}: the search's trials, then one ablation trial."""
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import create_trial

    study = optuna.create_study(direction="maximize")
    dists = {"a": CategoricalDistribution([0, 1]), "b": CategoricalDistribution([0, 1])}
    for (a, b), value in search.items():
        study.add_trial(create_trial(params={"a": a, "b": b}, distributions=dists, value=value))
    study.add_trial(create_trial(distributions=dists, user_attrs={"autotweak.ablation": True}, **ablation))
    return study


def test_the_path_ends_at_the_searchs_best_and_names_ablation_trials_it_left() -> None:
    """An ablation trial is a measurement: never the best; one off the final path is said, not dropped."""
    from optuna.trial import create_trial

    from autotweak.report import ablation_path

    # base, best, and one step of the path measured; then an ablation trial
    study = _two_tweaks({(0, 0): 0.0, (1, 1): 3.0, (1, 0): 2.5}, {"params": {"a": 0, "b": 1}, "value": 0.5})
    path = ablation_path(study, {"a": 0, "b": 0})
    assert path is not None and path.configs == [{"a": 0, "b": 0}, {"a": 1, "b": 0}, {"a": 1, "b": 1}]
    assert path.off_path == [3]
    assert any(
        "Ablation trial(s) 3 measured a config the path no longer takes" in n
        for n in path.section("acc").notes
    )
    # an ablation trial better than the search's best does not become the end of the path
    dists = study.trials[0].distributions
    study.add_trial(
        create_trial(
            params={"a": 1, "b": 0}, distributions=dists, value=9.0, user_attrs={"autotweak.ablation": True}
        )
    )
    assert ablation_path(study, {"a": 0, "b": 0}).configs[-1] == {"a": 1, "b": 1}


def test_a_failed_ablation_trial_that_turned_the_path_is_named() -> None:
    from optuna.trial import TrialState

    from autotweak.report import ablation_path

    failed = {"params": {"a": 1, "b": 0}, "state": TrialState.FAIL}
    study = _two_tweaks({(0, 0): 0.0, (1, 1): 3.0, (0, 1): 1.0}, failed)
    path = ablation_path(study, {"a": 0, "b": 0})
    assert path is not None and path.configs == [{"a": 0, "b": 0}, {"a": 0, "b": 1}, {"a": 1, "b": 1}]
    assert path.off_path_failed == [3]
    assert any(
        "Ablation trial(s) 3 failed on a config the path no longer takes" in n
        for n in path.section("acc").notes
    )


VALUES = {  # switching a on after b makes things worse (-0.05); c then more than makes up for it
    (0, 0, "u"): 0.0,
    (0, 1, "u"): 2.0,
    (1, 0, "u"): 0.0,
    (0, 0, "v"): -0.1,
    (1, 1, "u"): 1.95,
    (0, 1, "v"): 1.9,
    (1, 0, "v"): 0.4,
    (1, 1, "v"): 2.4,
}


def _tell_all(exp: Any, fail: set[tuple[Any, ...]]) -> None:
    with autotweak.Study(exp) as study:
        while (trial := study.ask()) is not None:
            key = (trial.config["a"], trial.config["b"], trial.config["c"])
            if key in fail:
                study.tell(trial, state="failed", error="RuntimeError: diverged")
            else:
                study.tell(trial, VALUES[key])


def test_a_tweak_that_makes_the_path_worse_is_pointed_out(home, make_experiment):
    exp = make_experiment(**_spec())
    _tell_all(exp, fail=set())
    report = build_report(load(exp))
    assert report.ablation is not None
    assert [(s.tweak, s.contribution) for s in report.ablation.steps] == [
        ("b", 2.0),
        ("a", pytest.approx(-0.05)),
        ("c", pytest.approx(0.45)),
    ]
    text = report.to_markdown()
    assert "Made the value worse where the path switched it on: a (-0.05)." in text
    assert "The best config with a back at its base value: trial " in text and " scored 1.9." in text
    assert "worth a trial" not in text, "that config was measured"
    assert "contribution: the change of the value, positive = better" in text


def test_a_config_that_failed_is_said_and_not_run_again_by_ablate(home, make_experiment):
    exp = make_experiment(**_spec(sampler={"name": "random"}, budget={"trials": 6}, seed=3))
    _tell_all(exp, fail={(0, 0, "u")})  # the base config diverges
    report = build_report(load(exp))
    assert report.ablation is not None
    start = report.ablation.start
    assert start.failed and start.value is None and start.trial == 0
    assert report.ablation.configs[0] not in report.ablation.unmeasured(), "it ran: no new trial for it"
    text = report.to_markdown()
    assert "| base config |  | ? |  | failed | 0 |" in text
    assert (
        "A trial of the config failed, so it has no value and is not run again: base config (trial 0)."
        in text
    )
    assert "The base config (trial 0) failed (RuntimeError: diverged), so there is no" in text
    run_ablation(load(exp), 3, storage=resolve_storage_url(None), tracking_uri=None)
    ablated = [t.params for t in load(exp).trials if t.user_attrs.get("autotweak.ablation")]
    assert {"a": 0, "b": 0, "c": "u"} not in ablated, "the failed base config is not queued again"


def test_ablate_leaves_the_searchs_queued_trials_to_resume(home, make_experiment):
    exp = make_experiment(**_spec(sampler={"name": "random"}, budget={"trials": 6}, seed=3))
    _tell_all(exp, fail=set())
    load(exp).enqueue_trial({"a": 1, "b": 0, "c": "v"})  # as an interrupted trial's retry waits
    with pytest.raises(
        autotweak.AutotweakError, match=r"has no queued trial.*`autotweak resume abl` runs them"
    ):
        run_ablation(load(exp), 3, storage=resolve_storage_url(None), tracking_uri=None)
    assert not [t for t in load(exp).trials if t.user_attrs.get("autotweak.ablation")]


def test_a_worse_tweak_whose_reverted_config_never_ran_is_worth_a_trial() -> None:
    from autotweak.report._ablation import Ablation, AblationStep

    start = AblationStep("base config", None, None, 1.0, None, True, 0)
    steps = [AblationStep("a", 0, 1, 0.9, -0.1, True, 1), AblationStep("b", 0, 1, 2.0, 1.1, True, 2)]
    path = Ablation(start=start, steps=steps, configs=[{}, {}, {}])
    notes = " ".join(path.section("loss").notes)
    assert "The best config with a back at its base value may beat the best; it is worth a trial." in notes


CONDITIONAL = {  # mom is searched only with sgd, as momentum in search_spaces/cnn.yaml
    "opt": {"type": "categorical", "choices": ["adam", "sgd"]},
    "mom": {"type": "categorical", "choices": [0.5, 0.9], "when": {"opt": "sgd"}},
    "b": {"type": "categorical", "choices": [0, 1]},
}


def _conditional_study(
    trials: list[tuple[dict[str, Any], float]], tweaks: dict[str, Any] = CONDITIONAL, baseline: bool = True
) -> optuna.Study:
    """A study over ``tweaks`` holding ``trials`` (params, value); the first is the baseline if asked."""
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import create_trial

    study = optuna.create_study(direction="maximize")
    study.set_user_attr("autotweak.spec", {"tweaks": {"name": "", "params": tweaks}})
    dists = {k: CategoricalDistribution(v["choices"]) for k, v in tweaks.items() if "choices" in v}
    for i, (params, value) in enumerate(trials):
        attrs = {"autotweak.baseline": True} if i == 0 and baseline else {}
        used = {k: dists[k] for k in params}
        study.add_trial(create_trial(params=params, distributions=used, value=value, user_attrs=attrs))
    return study


def test_a_conditional_tweak_switches_on_and_off_with_its_parent_on_the_path() -> None:
    """From adam to sgd, mom comes with sgd at the best's value; from sgd to adam, it leaves with sgd.

    Each config of the path is then one a trial can run, and the path ends at the best trial.
    """
    from autotweak.report import ablation_path

    on = _conditional_study(
        [
            ({"opt": "adam", "b": 0}, 0.0),
            ({"opt": "adam", "b": 1}, 2.0),
            ({"opt": "sgd", "mom": 0.9, "b": 0}, 1.9),
            ({"opt": "sgd", "mom": 0.9, "b": 1}, 3.9),
            ({"opt": "sgd", "mom": 0.5, "b": 1}, 3.5),
        ]
    )
    path = ablation_path(on, {"opt": "adam", "b": 0})
    assert path is not None
    assert path.configs == [
        {"opt": "adam", "b": 0},
        {"opt": "adam", "b": 1},
        {"opt": "sgd", "mom": 0.9, "b": 1},
    ]
    assert all(p.measured for p in [path.start, *path.steps]) and path.steps[-1].trial == 3
    assert path.held == []
    rows = {row[0]: row[1] for row in path.section("acc").rows}
    assert rows["opt"] == "adam → sgd (with mom 0.9)"

    off = _conditional_study(
        [
            ({"opt": "sgd", "mom": 0.5, "b": 0}, 0.0),
            ({"opt": "sgd", "mom": 0.5, "b": 1}, 2.0),
            ({"opt": "adam", "b": 0}, 1.0),
            ({"opt": "adam", "b": 1}, 3.0),
        ]
    )
    path = ablation_path(off, {"opt": "sgd", "mom": 0.5, "b": 0})
    assert path is not None
    assert path.configs == [
        {"opt": "sgd", "mom": 0.5, "b": 0},
        {"opt": "sgd", "mom": 0.5, "b": 1},
        {"opt": "adam", "b": 1},
    ]
    assert all(p.measured for p in [path.start, *path.steps])
    rows = {row[0]: row[1] for row in path.section("acc").rows}
    assert rows["opt"] == "sgd → adam (without mom)"


@pytest.mark.parametrize("opt", [{"type": "fixed", "value": "sgd"}, "sgd"], ids=["fixed", "bare"])
def test_a_conditional_tweak_under_a_fixed_parent_is_on_the_whole_path(opt: Any) -> None:
    """opt is fixed to sgd, so no trial's params hold it: mom is active all the same, at every step.

    The path once read the condition on the params alone: it failed (KeyError: 'mom') from a
    baseline, and without one went from ``{b: 0}`` to ``{b: 1}``, configs no trial runs.
    """
    from autotweak.report import ablation_path

    tweaks = {**CONDITIONAL, "opt": opt}
    trials = [({"mom": 0.5, "b": 0}, 1.5), ({"mom": 0.5, "b": 1}, 3.5), ({"mom": 0.9, "b": 1}, 3.9)]
    path = ablation_path(_conditional_study(trials, tweaks), {"opt": "sgd", "mom": 0.5, "b": 0})
    assert path is not None
    assert path.configs == [{"mom": 0.5, "b": 0}, {"mom": 0.5, "b": 1}, {"mom": 0.9, "b": 1}]
    assert all(p.measured for p in [path.start, *path.steps]) and path.steps[-1].trial == 2
    rows = {row[0]: row[1] for row in path.section("acc").rows}
    assert rows == {"base config": "", "b": "0 → 1", "mom": "0.5 → 0.9"}

    trials = [({"mom": 0.9, "b": 0}, 1.9), ({"mom": 0.9, "b": 1}, 3.9), ({"mom": 0.5, "b": 1}, 3.5)]
    path = ablation_path(_conditional_study(trials, tweaks, baseline=False), {"b": 0})
    assert path is not None
    assert path.configs == [{"mom": 0.9, "b": 0}, {"mom": 0.9, "b": 1}]
    assert all(p.measured for p in [path.start, *path.steps])
    assert path.held == ["mom"], "the base config does not set mom"


def test_ablate_measures_a_path_through_a_conditional_tweak(home, make_experiment):
    """``--ablate`` runs the path's configs with mom set where sgd needs it: none is skipped or wasted."""
    exp = make_experiment(
        name="cond",
        objective=ref("conditional"),
        base={"opt": "adam", "b": 0},
        tweaks=CONDITIONAL,
        metric={"name": "score", "direction": "maximize"},
        sampler={"name": "random"},
        budget={"trials": 2},
    )
    with autotweak.Study(exp) as study:
        load(exp).enqueue_trial({"opt": "sgd", "mom": 0.9, "b": 1})  # after the baseline
        while (trial := study.ask()) is not None:
            study.tell(trial, conditional(trial.config, trial))
    before = build_report(load(exp)).ablation
    assert before is not None and before.configs[-1] == {"opt": "sgd", "mom": 0.9, "b": 1}
    assert len(before.unmeasured()) == 1

    ran = run_ablation(load(exp), 4, storage=resolve_storage_url(None), tracking_uri=None)
    after = build_report(load(exp)).ablation
    assert after is not None and all(p.measured for p in [after.start, *after.steps])
    assert after.configs[-1] == {"opt": "sgd", "mom": 0.9, "b": 1}
    ablated = [t.params for t in load(exp).trials if t.user_attrs.get("autotweak.ablation")]
    assert 1 <= ran == len(ablated) <= 2, "each of the two configs between base and best, at most once"
    assert all(("mom" in p) == (p["opt"] == "sgd") for p in ablated), ablated
    assert len({tuple(sorted(p.items())) for p in ablated}) == ran
