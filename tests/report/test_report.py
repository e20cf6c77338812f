"""Reports: numbers that match the stores, for finished, failed, pruned and running studies."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import optuna
import pytest

import autotweak
from autotweak.engine._summary import summarize
from autotweak.report import build_report, write_html_report
from tests.conftest import objective
from tests.helpers import load, mlflow_runs
from tests.report.helpers import curve_spec, run_cli


def test_html_report_matches_the_stores(home, make_experiment, mlflow_client):
    exp = make_experiment(**curve_spec("rep", trials=14, startup=3))
    autotweak.optimize(exp)
    study = load(exp)
    summary = summarize(study)
    assert summary.counts["pruned"] > 0
    page = write_html_report(study, home / "out").read_text()
    for state, n in summary.counts.items():
        if n:
            assert f"<td>{state}</td><td>{n}</td>" in page
    assert f"<b>{summary.best_value:.6g}</b> (trial {summary.best_number}; maximize)" in page
    trials = [t for t in study.trials if t.state.is_finished()]
    assert f"Compute used: {summary.compute:.2f} full trainings over {len(trials)} trials." in page
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    spent = sum(max(t.intermediate_values) / 10 for t in pruned)
    assert summary.counts["pruned"] == len(pruned)
    assert (
        f"Pruning stopped {len(pruned)} trial{'s' * (len(pruned) != 1)} after {spent:.2f} full trainings; "
        "running them to the "
        f"end would have cost {len(pruned)}: pruning saved {len(pruned) - spent:.2f} full trainings."
    ) in page
    assert (
        "The full grid (4 values per numeric parameter, every choice of a categorical one) has 4 configs"
        in page
    )
    assert len(re.findall(r"data:image/png;base64,", page)) == 3, "history, curves and importance inline"
    # named as computed: PED-ANOVA, Optuna 5's default evaluator (the figure said fANOVA)
    ped_anova = optuna.importance.PedAnovaImportanceEvaluator()
    expected = optuna.importance.get_param_importances(study, evaluator=ped_anova)
    rows = "".join(f"<tr><td>{k}</td><td>{v:.3f}</td></tr>" for k, v in expected.items())
    assert "<h2>Hyperparameter importance (PED-ANOVA)</h2>" in page and rows in page
    values = sorted((t.value for t in trials if t.state == optuna.trial.TrialState.COMPLETE), reverse=True)
    top = sum(v >= values[math.ceil(len(values) / 10) - 1] for v in values)  # the top 10%, ties in
    rests = f"(the top 10%: here {top} of {len(values)}; pruned trials do not count)"
    hint = f"{top} top trials are few (Optuna advises at least 5): read it as a hint."
    assert rests in page and "not what each tweak of the best brought over the base config" in page
    assert top < 5 and hint in page, "a study this small has fewer top trials than PED-ANOVA needs"
    markdown = (home / "out" / "report.md").read_text()
    assert rests in markdown and hint in markdown
    assert markdown.startswith(build_report(study).to_markdown().rstrip())
    linked = re.findall(r"!\[[^]]*\]\(([^)]+)\)", markdown)
    assert sorted(linked) == ["curves.png", "history.png", "importance.png"]
    assert all((home / "out" / name).is_file() for name in linked)

    cli = run_cli(home, "report", "rep", "--html", "html")
    for state, n in summary.counts.items():
        assert (f"| {state} | {n} |" in cli.stdout) == bool(n)
    assert f"Best acc: **{summary.best_value:.6g}** (trial {summary.best_number}; maximize)." in cli.stdout
    parent = mlflow_runs(mlflow_client, "rep").parents[0]
    logged = {a.path for a in mlflow_client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.html", "report/report.md", "report/history.png", "report/curves.png"} <= logged
    note = mlflow_client.get_run(parent.info.run_id).data.tags["mlflow.note.content"]
    assert note.startswith("# Study `rep`") and f"| pruned | {summary.counts['pruned']} |" in note


def test_report_for_failed_trials_and_a_study_still_running(home, make_experiment):
    exp = make_experiment(
        name="live",
        objective=objective("flaky"),
        tweaks={"x": {"type": "categorical", "choices": [3.0, 0.5, 1.0]}},
        sampler="grid",
        budget={"trials": 3},
        base={},
    )
    with autotweak.Study(exp) as study:
        for state in ("failed", "complete"):
            trial = study.ask()
            assert trial is not None
            study.tell(trial, 0.25, state=state, error="too large" if state == "failed" else None)
        running = study.ask()
        assert running is not None
        report = build_report(study.optuna_study)
        counts = {
            "complete": 1,
            "pruned": 0,
            "failed": 1,
            "preempted": 0,
            "interrupted": 0,
            "running": 1,
            "waiting": 0,
        }
        assert report.summary.counts == counts
        page = write_html_report(study.optuna_study, home / "live").read_text()
        assert "Still running: 1 trial(s) in progress; this report is a snapshot" in page
        text = report.to_markdown()
        assert "Still running: 1 trial(s) in progress; this report is a snapshot" in text
        assert "## Failed trials" in text and "| 1 | too large | 0 |" in text, "why it failed, and which"
        assert report.summary.compute == 1.0, "the failed and the running trial reported no step"
        assert "Compute used: 1.00 full trainings over 3 trials." in text
        assert "| local (" in text and "| 3 |" in text, "the running trial counts its time so far"
        assert "<td>failed</td><td>1</td>" in page
        study.tell(running, 0.5)


def test_report_of_a_plain_optuna_study():
    study = optuna.create_study(direction="minimize")
    study.optimize(lambda t: (t.suggest_float("x", -1, 1) - 0.2) ** 2, n_trials=5)
    text = build_report(study).to_markdown()
    assert f"Best value: **{study.best_value:.6g}** (trial {study.best_trial.number}; minimize)." in text
    assert "No full grid to compare with: the study holds no autotweak spec." in text
    assert "| local | 5 |" in text


def test_two_studies_side_by_side(home, make_experiment):
    pruned = make_experiment(**curve_spec("with-pruning", trials=8, startup=2))
    autotweak.optimize(pruned)
    autotweak.optimize(pruned.with_overrides(name="without", pruner=autotweak.Component("none")))
    cli = run_cli(home, "report", "with-pruning", "without", "--html", "cmp")
    for name, setup in (("with-pruning", "random + median"), ("without", "random + none")):
        s = summarize(load(pruned.with_overrides(name=name)))
        best = f"{s.best_value:.6g}"
        counts = f"{s.counts['complete']} | {s.counts['pruned']} | {s.counts['failed']} | 0 | 0"
        assert f"| {name} | {setup} | {counts} | {best} |" in cli.stdout
        assert f"| {s.compute:.2f} |" in cli.stdout
    assert (home.parent / "cmp" / "compare.html").read_text().count("data:image/png;base64,") == 1


def test_comparing_different_goals_is_refused(home, make_experiment):
    from autotweak.report import compare_markdown

    autotweak.optimize(make_experiment(name="a", budget={"trials": 1}))
    autotweak.optimize(
        make_experiment(name="b", budget={"trials": 1}, metric={"name": "acc", "direction": "maximize"})
    )
    exp_a, exp_b = make_experiment(name="a"), make_experiment(name="b")
    with pytest.raises(autotweak.AutotweakError, match="must optimize the same metric the same way"):
        compare_markdown([load(exp_a), load(exp_b)])
    with pytest.raises(autotweak.AutotweakError, match="must be different studies, got a twice"):
        compare_markdown([load(exp_a), load(exp_a)])


def test_a_failed_base_config_failures_by_kind_and_ties_are_said(home, make_experiment):
    exp = make_experiment(
        name="said",
        tweaks={"x": {"type": "float", "low": -5.0, "high": 5.0}},
        base={"x": 1.9},
        sampler="random",
        budget={"trials": 6},
    )
    outcomes = [
        ("failed", None, "RuntimeError: diverged at x=1.9"),
        ("complete", 0.5, None),
        ("failed", None, "RuntimeError: diverged at x=2.35"),
        ("complete", 0.5, None),
        ("failed", None, "ValueError: bad batch"),
        ("complete", 0.75, None),
    ]
    with autotweak.Study(exp) as study:
        for state, value, error in outcomes:
            trial = study.ask()
            assert trial is not None
            study.tell(trial, value, state=state, error=error)
        text = build_report(study.optuna_study).to_markdown()
    assert "Best loss: **0.5** (trial 1; tied with trial(s) 3; minimize)." in text
    assert "The base config (trial 0) failed (RuntimeError: diverged at x=1.9), so there is no" in text
    assert "3 trial(s) failed, for 2 kind(s) of reason" in text
    assert "| 2 | RuntimeError: diverged at x=1.9 | 0, 2 |" in text, "numbers aside, one kind"
    assert "| 1 | ValueError: bad batch | 4 |" in text


def test_report_html_into_a_folder_that_cannot_be_made_is_said_before_the_report(home, make_experiment):
    """Said as a usage error before the report is read; it was a FileNotFoundError traceback after it."""
    autotweak.optimize(make_experiment(name="nowhere", budget={"trials": 2}))
    (home.parent / "afile").write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "autotweak", "report", "nowhere", "--html", "afile/out"],
        cwd=home.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and not done.stdout, done.stdout
    assert done.stderr == (
        "error: --html: must be a folder that can be made and written (NotADirectoryError: Not a directory), "
        "got 'afile/out'.\n"
    )
