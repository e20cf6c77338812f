"""The ``autotweak`` command, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from autotweak.testing.services import mlflow_server
from tests.conftest import base_spec, objective


def autotweak(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``autotweak ARGS`` in ``cwd`` (with ``env`` added to the environment)."""
    return subprocess.run(
        [sys.executable, "-m", "autotweak", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def in_process(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``autotweak ARGS`` in this process and working directory, reported as :func:`autotweak` does.

    For the commands whose output a test reads for what it says, not for what a fresh process
    adds (its imports, its start, a stray warning): each subprocess pays the CLI's imports again.
    """
    from autotweak._entry import main
    from autotweak.cli import _main, _meta

    def fresh() -> None:  # as a new process has them: not quiet, no streams yet
        for console in (_main._console, _meta._console):
            vars(console).clear()
            console.__init__()  # type: ignore[misc]

    fresh()
    capsys.readouterr()  # what came before is not this command's
    try:
        main(list(args))
        code = 0
    except SystemExit as exited:
        code = exited.code if isinstance(exited.code, int) else 1
    finally:  # a later test's in-process main() must not write to this test's captured streams
        fresh()
    said = capsys.readouterr()
    return subprocess.CompletedProcess(["autotweak", *args], code, said.out, said.err)


def test_optimize_status_best_report_resume(home, capsys):
    """The first command as a user starts it; the rest in this process (same stores, same words)."""
    cwd = home.parent
    (cwd / "exp.yaml").write_text(yaml.safe_dump(base_spec(base={"x": 0.0}, budget={"trials": 3})))
    run = autotweak("optimize", "exp.yaml", cwd=cwd)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "starting study 'study': sampler random, pruner none, 1 worker(s)"
    assert sum(line.startswith("trial ") for line in lines) == 3, "one plain line per trial when not a TTY"
    assert "study 'study' stopped (trials): 3 complete" in run.stdout
    assert "autotweak ui" in run.stdout

    status = in_process(capsys, "status")
    assert status.returncode == 0 and status.stdout.startswith("study: 3 trials, best ")
    (cwd / "one.yaml").write_text(
        yaml.safe_dump(base_spec(name="one", base={"x": 0.0}, budget={"trials": 1}))
    )
    assert in_process(capsys, "optimize", "one.yaml", "-q").returncode == 0
    listed, best, said, report, html = [
        in_process(capsys, *args)
        for args in (
            ["status"],
            ["best", "study", "--json"],
            ["best", "study"],
            ["report", "study"],
            ["report", "study", "--html", "out"],
        )
    ]
    assert "one: 1 trial, best " in listed.stdout
    payload = json.loads(best.stdout)
    assert set(payload) == {"trial", "metric", "direction", "value", "base_value", "config", "params"}
    assert (payload["metric"], payload["direction"], payload["base_value"]) == ("loss", "minimize", 1.0)
    assert "x" in payload["params"]
    assert payload["config"] == {**payload["params"]}, "base {x} updated with the tweak of x"
    first = f"trial {payload['trial']}: loss {payload['value']:.6g} (minimize; base config 1)"
    assert said.stdout.splitlines() == [first, f"  x: {payload['params']['x']}"], "what the value is"
    assert "| complete | 3 |" in report.stdout
    assert "Base config: 1" in report.stdout, "trial 0 is the base config x=0 with loss 1"
    wrote = next(line for line in html.stdout.splitlines() if line.startswith("wrote "))
    assert wrote.startswith(f"wrote {Path('out', 'report.html')} and, next to it, ") and "report.md" in wrote
    assert all(name in wrote for name in (p.name for p in (cwd / "out").glob("*.png")))

    more = in_process(capsys, "resume", "study", "--trials", "5", "-q")
    assert more.returncode == 0, more.stderr
    status, lower = (
        in_process(capsys, "status", "study"),
        in_process(capsys, "resume", "study", "--trials", "3"),
    )
    assert status.stdout.startswith("study: 5 complete")
    assert lower.returncode == 2
    assert "--trials 3: study 'study' already has 5 trial(s); --trials is the study's total" in lower.stderr
    assert "`autotweak resume study --trials 15` runs 10 more" in lower.stderr
    spent = in_process(capsys, "resume", "exp.yaml", "-q")  # the spec file's budget: 3 trials
    assert spent.returncode == 0, spent.stderr
    said = "warning: no trial run: the study has 5 trial(s) and its budget is 3"
    assert said in spent.stderr, "on stderr, even with -q"
    assert spent.stderr.count("no trial run") == 1, "not the library's warning too"
    assert "`autotweak resume study --trials 15` runs 10 more" in spent.stderr


def test_bad_spec_exits_2_with_the_field_and_rule_before_any_compute(home):
    cwd = home.parent
    (cwd / "exp.yaml").write_text(yaml.safe_dump(base_spec(budget={"trials": 0})))
    run = autotweak("optimize", "exp.yaml", cwd=cwd)
    assert run.returncode == 2
    assert "exp.yaml: 'budget.trials' must be an integer >= 1, got 0." in run.stderr
    assert not (home / "optuna.db").exists(), "nothing was created"


def test_a_name_given_on_the_command_line_is_checked_before_anything_is_created(home):
    cwd = home.parent
    (cwd / "exp.yaml").write_text(yaml.safe_dump(base_spec(budget={"trials": 1})))
    run = autotweak("optimize", "exp.yaml", "--name", "../../escape", cwd=cwd)
    assert run.returncode == 2, run.stderr
    assert "error: --name: must name one folder and an MLflow model" in run.stderr, run.stderr
    assert not (home / "optuna.db").exists(), "nothing was created"


def test_unknown_study_lists_what_exists(home):
    run = autotweak("best", "nope", cwd=home.parent)
    assert run.returncode == 2 and "no study named 'nope'" in run.stderr


def test_a_worker_that_looks_in_the_wrong_storage_names_it_and_how_to_give_the_right_one(home, capsys):
    """A second machine without $AUTOTWEAK_STORAGE looks in its embedded store, which it should say."""
    run = autotweak("worker", "shared-study", cwd=home.parent)
    assert run.returncode == 2, run.stderr
    default = home / "optuna.db"
    assert f"no study named 'shared-study': the default storage {default} does not exist" in run.stderr
    assert "; give the storage that holds the study: " in run.stderr
    assert "--storage (CLI), $AUTOTWEAK_STORAGE or `storage` (spec or Python)." in run.stderr
    assert not (home / "optuna.db").exists(), "no empty store is left for the next command to find"
    optuna.create_study(study_name="other", storage=f"sqlite:///{home / 'optuna.db'}")
    run = in_process(capsys, "worker", "shared-study")  # the same command, its imports paid above
    assert f"no study named 'shared-study' in the storage sqlite:///{home / 'optuna.db'} " in run.stderr
    assert "(studies there: other); check the name, or give the storage that holds the study: " in run.stderr


def test_storage_falls_back_to_the_environment(home, monkeypatch, capsys):
    cwd = home.parent
    (cwd / "exp.yaml").write_text(yaml.safe_dump(base_spec(budget={"trials": 1})))
    url = f"sqlite:///{cwd / 'elsewhere.db'}"
    monkeypatch.setenv("AUTOTWEAK_STORAGE", url)
    assert autotweak("optimize", "exp.yaml", "-q", cwd=cwd).returncode == 0
    assert (cwd / "elsewhere.db").exists() and not (home / "optuna.db").exists()
    assert in_process(capsys, "status").stdout.startswith("study: 1 trial, best ")


@pytest.mark.slow  # a tracking server's start
def test_a_study_on_a_tracking_server_says_to_open_the_server_not_to_run_autotweak_ui(home, tmp_path):
    """`autotweak ui` serves a file store only: on a server it just says to open the server."""
    cwd = home.parent
    (cwd / "exp.yaml").write_text(yaml.safe_dump(base_spec(base={"x": 0.0}, budget={"trials": 1})))
    failing = base_spec(name="broken", objective=objective("flaky"), base={"x": 3.0}, budget={"trials": 1})
    failing["tweaks"] = {"x": {"type": "float", "low": 2.5, "high": 4.0}}  # x > 2: the objective raises
    (cwd / "broken.yaml").write_text(yaml.safe_dump(failing))
    with mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts") as url:
        run = autotweak("optimize", "exp.yaml", "--tracking-uri", url, cwd=cwd)
        broken = autotweak("optimize", "broken.yaml", "--tracking-uri", url, cwd=cwd)
    assert run.returncode == 0, run.stderr
    assert "every trial is in MLflow: open experiment 'study' (parent run " in run.stdout
    assert f"  {url}/#/experiments/" in run.stdout and "autotweak ui" not in run.stdout
    assert broken.returncode == 1, broken.stderr
    assert f"traceback.txt; the MLflow UI at {url} shows it" in broken.stderr, broken.stderr


def test_worker_joins_a_running_study_and_spends_its_budget(home, make_experiment, mlflow_client):
    import autotweak as at
    from tests.helpers import load, mlflow_runs

    exp = make_experiment(name="joined", budget={"trials": 4})
    at.Study(exp).close()  # the launcher created the study; no trial ran yet
    run = autotweak("worker", "joined", cwd=home.parent)
    assert run.returncode == 0, run.stderr
    assert "worker done: 4 trial(s) run; stopped (trials)" in run.stdout
    assert len(load(exp).trials) == 4
    runs = mlflow_runs(mlflow_client, "joined")
    assert len(runs.parents) == 1 and sorted(runs.children) == [0, 1, 2, 3]
    parent_id = runs.parents[0].info.run_id
    assert all(r.data.tags["mlflow.parentRunId"] == parent_id for r in runs.children.values())


def test_the_readme_tour_experiment_file_runs(home):
    """The experiment file of the README's tour, as printed there, with a budget of two short trials."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    tour = readme.split("### The experiment file", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    spec = yaml.safe_load(tour)
    spec["base"]["epochs"] = 2
    spec["metric"]["steps"] = 2
    spec["budget"] = {"trials": 2}
    spec["execution"] = {"workers": 1}
    cwd = home.parent
    (cwd / "tour.yaml").write_text(yaml.safe_dump(spec))
    env_path = str(Path(__file__).parents[2])  # the objective is examples.mlp_digits:train
    run = subprocess.run(
        [sys.executable, "-m", "autotweak", "optimize", "tour.yaml"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": env_path},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 complete" in run.stdout, run.stdout
