"""What the ``autotweak`` command tells a user when something goes wrong, run as a user runs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy
import yaml

from autotweak import Study as autotweak_study
from autotweak.cli._console import Console
from autotweak.engine import Progress
from autotweak.spec import Experiment
from autotweak.testing.services import Postgres, free_port, postgres
from autotweak.tracking._records import StudySummary
from tests.cli.test_cli import autotweak, in_process
from tests.conftest import base_spec

FAILING = "def train(config, trial):\n    return config['optim']['lr']\n"


def _spec(cwd: Path, **overrides: Any) -> None:
    (cwd / "exp.yaml").write_text(yaml.safe_dump(base_spec(**overrides)))


def _said_once(stderr: str, study: str, failed: int) -> None:
    """The one error of a study whose every trial failed says all the engine's warning said; no warning."""
    assert "WARNING" not in stderr and "no trial completed" not in stderr, stderr
    (error,) = stderr.splitlines()
    assert error == (
        f"error: every trial of study '{study}' failed ({failed} failed, none completed); the first, "
        "trial 0, failed with: KeyError: 'optim'; where an exception was raised, its traceback is kept in "
        "the trial's MLflow run (artifact traceback.txt; `autotweak ui` shows it). Fix the objective, "
        f"then resume the study (its {failed} trial(s) spent its budget; --trials is the study's total): "
        f"`autotweak resume {study} --trials {2 * failed}`"
    )


def test_a_study_whose_every_trial_failed_says_why_once_and_exits_1(home):
    cwd = home.parent
    (cwd / "obj.py").write_text(FAILING)
    _spec(cwd, objective="obj.py:train", budget={"trials": 2})
    run = autotweak("optimize", "exp.yaml", cwd=cwd)
    assert run.returncode == 1, run.stdout + run.stderr
    fails = [line for line in run.stdout.splitlines() if line.startswith("trial ")]
    assert len(fails) == 2 and all(" fail (KeyError: 'optim') | done " in line for line in fails), fails
    _said_once(run.stderr, "study", 2)


def test_a_quiet_resume_whose_every_trial_failed_says_why_once(home, capsys):
    """-q prints no trial line: the error names the first failure itself."""
    cwd = home.parent
    (cwd / "obj.py").write_text(FAILING)
    _spec(cwd, objective="obj.py:train", budget={"trials": 1})
    assert in_process(capsys, "optimize", "exp.yaml", "-q").returncode == 1  # the study the resume reads
    run = autotweak("resume", "study", "--trials", "2", "-q", cwd=cwd)
    assert run.returncode == 1 and not run.stdout, run.stdout + run.stderr
    _said_once(run.stderr, "study", 2)


# A spot notice stops a trial by raising TrialPreempted from its next report: these raise it at once.
PREEMPTED = (
    "from autotweak.engine._preemption import TrialPreempted\n\n"
    "def lost(config, trial):\n"
    "    raise TrialPreempted('instance-action')\n\n"
    "def lost_then_broken(config, trial):\n"
    "    if trial.number == 0:\n"
    "        raise TrialPreempted('instance-action')\n"
    "    return config['optim']['lr']\n"
)


def test_the_stop_line_says_preempted_trials_apart_from_failed_ones(home):
    cwd = home.parent
    (cwd / "obj.py").write_text(PREEMPTED)
    _spec(cwd, objective="obj.py:lost_then_broken", budget={"trials": 2}, execution={"max_retries": 0})
    run = autotweak("optimize", "exp.yaml", cwd=cwd)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "study 'study' stopped (trials): 1 failed, 1 preempted" in run.stdout
    assert (
        "no trial of study 'study' completed (1 failed, 1 preempted: their machines went away, not the "
        "objective's fault); the first, trial 1, failed with: KeyError: 'optim'" in run.stderr
    ), run.stderr
    assert "every trial" not in run.stderr, "a trial whose machine went away did not fail"


def test_a_study_whose_every_trial_was_preempted_asks_for_a_resume_not_a_fix(home):
    """The resume it names runs trials: its budget is spent, so a plain one would run none."""
    cwd = home.parent
    (cwd / "obj.py").write_text(PREEMPTED)
    _spec(cwd, objective="obj.py:lost", budget={"trials": 2}, execution={"max_retries": 0})
    run = autotweak("optimize", "exp.yaml", cwd=cwd)
    assert run.returncode == 1, "no trial completed: a script that runs report next must know"
    assert "study 'study' stopped (trials): 2 preempted" in run.stdout, run.stdout + run.stderr
    said = (
        "no trial of study 'study' completed (2 preempted: their machines went away, not the objective's "
        "fault); resume the study (its 2 trial(s) spent its budget; --trials is the study's total): "
        "`autotweak resume study --trials 4`"
    )
    assert f"error: {said}" in run.stderr.splitlines(), run.stderr
    assert "failed" not in run.stderr and "Fix the objective" not in run.stderr
    assert "`autotweak resume study`" not in run.stderr, "the engine named a resume that runs nothing"
    again = autotweak("resume", "study", "-q", cwd=cwd)
    assert again.returncode == 1, again.stdout + again.stderr
    assert again.stderr.splitlines() == [f"error: no trial run in this session, and {said}"]


def test_a_resume_of_a_study_whose_failed_trials_spent_its_budget_names_the_first_failure_once(home, capsys):
    """One error, with the failure read from the storage; no warning naming another --trials."""
    cwd = home.parent
    (cwd / "obj.py").write_text(FAILING)
    _spec(cwd, objective="obj.py:train", budget={"trials": 2})
    assert in_process(capsys, "optimize", "exp.yaml", "-q").returncode == 1  # the study the resume reads
    run = autotweak("resume", "study", cwd=cwd)
    assert run.returncode == 1, run.stdout + run.stderr
    (error,) = run.stderr.splitlines()
    assert error.startswith(
        "error: no trial run in this session, and every trial of study 'study' failed (2 failed, none "
        "completed); the first, trial 0, failed with: KeyError: 'optim'; "
    ), error
    assert error.endswith("`autotweak resume study --trials 4`") and "autotweak report" not in error


def test_a_study_whose_failed_trials_spent_its_compute_budget_says_which_field_to_raise(home):
    cwd = home.parent
    (cwd / "obj.py").write_text(
        "def train(config, trial):\n    for step in range(1, 6):\n        trial.report(1.0, step)\n"
        "    raise RuntimeError('late')\n"
    )
    _spec(cwd, objective="obj.py:train", budget={"compute": 2})
    run = autotweak("optimize", "exp.yaml", "-q", cwd=cwd)
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stderr.rstrip().endswith(
        "Fix the objective, then resume the study (its trials spent its compute budget: raise "
        "'budget.compute' in the spec file and resume from that file; the study is 'study'): "
        "`autotweak resume SPEC.yaml`"
    ), run.stderr


def test_a_flat_dotted_base_runs_as_trial_0_and_the_objective_gets_it_nested(home):
    cwd = home.parent
    (cwd / "obj.py").write_text(FAILING)  # fails unless config['optim'] is a nested mapping
    tweaks = {"optim.lr": {"type": "float", "low": 0.001, "high": 0.1}}
    _spec(cwd, objective="obj.py:train", base={"optim.lr": 0.05}, tweaks=tweaks, budget={"trials": 2})
    run = autotweak("optimize", "exp.yaml", cwd=cwd)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 complete" in run.stdout
    assert "base config 0.05" in run.stdout, "the base config ran as trial 0"


def test_resume_shows_only_the_trials_it_ran_each_with_its_own_count(home, capsys):
    cwd = home.parent
    _spec(cwd, budget={"trials": 2})
    assert in_process(capsys, "optimize", "exp.yaml").returncode == 0
    run = in_process(capsys, "resume", "study", "--trials", "4")
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stdout.splitlines() if line.startswith("trial ")]
    assert [line.split()[1] for line in lines] == ["2", "3"], lines
    assert ["done 3/4" in lines[0], "done 4/4" in lines[1]] == [True, True], lines


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["status", "--storage", "sqlite:////no_such_dir_xyz/x.db"],
            "error: --storage: no Optuna storage at '/no_such_dir_xyz/x.db' (the file does not exist)",
        ),
        (
            ["best", "study", "--storage", "foo://bar"],
            "error: --storage: cannot open the store at 'foo://bar': it must be a database URL, such as "
            "sqlite:///path/optuna.db or postgresql://user@host/db",
        ),
        (
            ["report", "study", "--storage", "not a url"],
            "error: --storage: cannot open the store at 'not a url'",
        ),
        (
            ["optimize", "exp.yaml", "--tracking-uri", "foo://bar"],
            "error: --tracking-uri: cannot open the store at 'foo://bar': Unsupported",
        ),
        (
            ["worker", "study", "--storage", "postgresql+psycopg2://autotweak@127.0.0.1:1/optuna"],
            "error: --storage: cannot open the store at "
            "'postgresql+psycopg2://autotweak@127.0.0.1:1/optuna': OperationalError: ",
        ),
        (
            ["status", "--storage", "mysql://autotweak@127.0.0.1:1/optuna"],
            "error: --storage: cannot open the store at 'mysql://autotweak@127.0.0.1:1/optuna': it needs "
            "the Python package of its driver 'mysqldb', which is not installed",
        ),
        (
            ["optimize", "exp.yaml", "--tracking-uri", "./mlruns"],
            "error: --tracking-uri: cannot open the store at './mlruns': it must be a database URI (such as "
            "sqlite:///mlflow.db) or a tracking server",
        ),
    ],
    ids=["missing-folder", "unknown-scheme", "not-a-url", "tracking", "worker", "driver", "file-store"],
)
def test_a_store_that_cannot_be_opened_is_one_line_naming_the_option(home, args, expected):
    _spec(home.parent)
    run = autotweak(*args, cwd=home.parent)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith(expected) and run.stderr.count("\n") == 1, run.stderr
    assert run.stdout == "", "no 'starting study' line before a study that never opened"
    assert not Path("/no_such_dir_xyz").exists(), "nothing is created at a path that does not exist"


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    """A server that trusts 'autotweak' and asks 'guarded' for its password."""
    with postgres() as server:
        server.create_database("optuna")
        engine = sqlalchemy.create_engine(server.url("optuna"))
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("CREATE ROLE guarded LOGIN PASSWORD 'right'"))
        engine.dispose()
        hba = server.folder / "data" / "pg_hba.conf"
        hba.write_text("host all guarded 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        server.ctl("reload")
        yield server


@pytest.mark.parametrize(
    ("url", "said"),
    [
        (
            "postgresql://autotweak:s3cret@127.0.0.1:{port}/nodb",
            'database "nodb" does not exist; create the database or fix its name in the URL '
            "(scripts/team_stores.sh start creates 'optuna' and 'mlflow')",
        ),
        (
            "postgresql://nobody:s3cret@127.0.0.1:{port}/optuna",
            'role "nobody" does not exist; fix the user name in the URL (the stores of '
            "scripts/team_stores.sh have the user 'autotweak')",
        ),
        (
            "postgresql://autotweak:s3cret@127.0.0.1:{free}/optuna",
            "Connection refused; is its server running there? start it (scripts/team_stores.sh start) "
            "or fix the URL's host and port",
        ),
        (
            "postgresql://guarded:s3cret@127.0.0.1:{port}/optuna",
            'password authentication failed for user "guarded"; fix the user name or password in the URL '
            "(postgresql://USER:PASSWORD@HOST:PORT/DATABASE)",
        ),
        (
            "postgresql://guarded@127.0.0.1:{port}/optuna",
            "no password supplied; fix the user name or password in the URL "
            "(postgresql://USER:PASSWORD@HOST:PORT/DATABASE)",
        ),
    ],
    ids=["database", "user", "server-down", "wrong-password", "no-password"],
)
def test_a_postgresql_store_that_refuses_says_how_to_fix_it_password_hidden(home, pg, url, said):
    url = url.format(port=pg.port, free=free_port())
    run = autotweak("worker", "study", cwd=home.parent, env={"AUTOTWEAK_STORAGE": url})
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "s3cret" not in run.stderr, run.stderr
    assert run.stderr.startswith(
        "error: --storage (from $AUTOTWEAK_STORAGE): cannot open the store at 'postgresql+psycopg2://"
    )
    assert run.stderr.rstrip().endswith(said), run.stderr


def test_a_report_with_its_tracking_server_down_reads_the_hosts_from_optuna(home, capsys):
    """The study's sessions name each trial's host: the report neither asks MLflow nor warns.

    (MLflow's client would retry a dead server for about four minutes; a study whose trials
    Optuna cannot place is covered in tests/report/test_hosts.py.)
    """
    _spec(home.parent, budget={"trials": 2})
    assert in_process(capsys, "optimize", "exp.yaml", "-q").returncode == 0  # the study the report reads
    down = f"http://user:s3cret@127.0.0.1:{free_port()}"
    run = subprocess.run(
        [sys.executable, "-m", "autotweak", "report", "study", "--tracking-uri", down],
        cwd=home.parent,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert run.returncode == 0, run.stderr
    assert "| complete | 2 |" in run.stdout
    assert f"| local ({socket.gethostname()}) | 2 |" in run.stdout, run.stdout
    assert "no MLflow server answers" not in run.stderr and "s3cret" not in run.stderr, run.stderr


def test_a_store_from_the_environment_is_refused_naming_its_variable(home):
    _spec(home.parent)
    run = autotweak("optimize", "exp.yaml", cwd=home.parent, env={"MLFLOW_TRACKING_URI": "mlruns"})
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith(
        "error: --tracking-uri (from $MLFLOW_TRACKING_URI): cannot open the store at 'mlruns': it must be "
    ), run.stderr
    assert "exp.yaml" not in run.stderr, "the spec file does not set it"


@pytest.mark.parametrize("command", [["status"], ["best", "study"], ["resume", "study"], ["worker", "study"]])
def test_a_misspelled_sqlite_storage_is_refused_not_created(home, command):
    missing = home.parent / "typo" / "optuna.db"
    run = autotweak(*command, "--storage", f"sqlite:///{missing}", cwd=home.parent)
    assert run.returncode == 2 and "(the file does not exist)" in run.stderr, run.stdout + run.stderr
    assert not missing.parent.exists()


@pytest.mark.parametrize("command", [["status"], ["optimize", "exp.yaml"]])
def test_the_mlflow_store_given_as_the_optuna_storage_is_refused_untouched(home, command):
    """The two stores sit side by side in .autotweak/: naming the wrong one changes neither."""
    import sqlite3

    from mlflow import MlflowClient

    db = home / "other" / "mlflow.db"
    db.parent.mkdir()
    MlflowClient(f"sqlite:///{db}").search_experiments()  # creates MLflow's tables
    before = sorted(r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master"))
    _spec(home.parent)
    run = autotweak(*command, "--storage", f"sqlite:///{db}", cwd=home.parent)
    assert run.returncode == 2, run.stderr
    assert (
        f"sqlite:///{db}: must be an Optuna storage, got a database with other tables "
        "(it looks like an MLflow store)" in " ".join(run.stderr.split())
    )
    assert "Traceback" not in run.stderr
    assert sorted(r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master")) == before


def test_workers_list_without_a_region_says_how_to_give_one(home, monkeypatch):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "no-aws-config"))  # no region from a config file
    run = autotweak("workers", "list", cwd=home.parent)
    assert run.returncode == 2
    assert (
        run.stderr.startswith("error: no AWS region is set: pass --region")
        and "AWS_DEFAULT_REGION" in run.stderr
    )
    assert "Traceback" not in run.stderr


def test_an_interrupted_study_says_how_to_continue(home, monkeypatch, capsys):
    from autotweak.cli._main import main
    from autotweak.engine import StudyResult

    counts = {"complete": 1, "failed": 0, "waiting": 1}  # the interrupted trial queued again
    summary = StudySummary("study", counts, 0, 1.0, {}, None, 0.2, interrupted=True)
    result = StudyResult(summary, "study", "sqlite://", None, None, ["interrupted"])
    monkeypatch.setattr("autotweak.engine.optimize", lambda *a, **k: result)
    _spec(home.parent)
    with pytest.raises(SystemExit) as exited:
        main(["optimize", "exp.yaml"])
    assert exited.value.code == 130
    out = capsys.readouterr().out
    assert "`autotweak resume study` continues the study" in out
    assert "study 'study' stopped (interrupted): 1 complete, 1 queued\n" in out, "Optuna's word: 1 waiting"


def test_plain_progress_lines_show_each_trials_count_and_why_it_failed(make_experiment, capsys):
    study = optuna.create_study()
    good = study.ask()
    study.tell(good, 1.0)
    bad = study.ask()
    bad.set_user_attr("autotweak.failure", "ValueError: " + "x" * 300 + "\nmore")
    study.tell(bad, state=optuna.trial.TrialState.FAIL)
    trials = study.get_trials()
    progress = Progress(
        counts={"complete": 1, "pruned": 0, "failed": 1, "running": 0},
        done=2,
        total=2,
        best_value=1.0,
        best_number=0,
        elapsed=3.0,
        eta=0.0,
        compute=1.0,
        last_finished=trials,
        done_after={0: 1, 1: 2},
    )
    experiment: Experiment = make_experiment()
    Console(force_plain=True)._plain(experiment, progress)
    first, second = capsys.readouterr().out.splitlines()
    assert first.startswith("trial 0 complete loss=1 | done 1/2, ")
    assert second.startswith("trial 1 fail (ValueError: xxx") and "…) | done 2/2, " in second
    assert len(second.split(" | ")[0]) < 130, "the reason is cut short; the traceback is in MLflow"


@pytest.mark.slow
def test_ctrl_c_stops_the_ui_quietly(home):
    """Also when started as a shell's background job, which inherits SIGINT ignored."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "autotweak", "ui", "--port", str(port)],
        cwd=home.parent,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    deadline = time.time() + 90
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                break
        except OSError:
            assert time.time() < deadline and proc.poll() is None, "the UI did not start"
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "Traceback" not in out and "error:" not in out and "MLflow UI stopped" in out
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)


def test_the_cli_log_handler_is_installed_once() -> None:
    """main() run many times in one process keeps one handler, on the stderr of the last run."""
    import logging

    from autotweak.cli._console import Console

    logger = logging.getLogger("autotweak")
    before = list(logger.handlers)
    try:
        for _ in range(3):
            Console().configure_logging(0)
        ours = [h for h in logger.handlers if h not in before]
        assert len(ours) == 1 and isinstance(ours[0], logging.StreamHandler)
        assert ours[0].stream is sys.stderr
    finally:
        for handler in [h for h in logger.handlers if h not in before]:
            logger.removeHandler(handler)


def test_ctrl_c_while_the_cli_imports_is_quiet(monkeypatch, capsys) -> None:
    """A Ctrl-C in the second or two that importing the CLI takes: exit 130, no traceback."""
    import importlib.abc

    from autotweak import _entry

    class Interrupted(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "autotweak.cli":
                raise KeyboardInterrupt
            return None

    monkeypatch.delitem(sys.modules, "autotweak.cli", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Interrupted(), *sys.meta_path])
    with pytest.raises(SystemExit) as stop:
        _entry.main(["--help"])
    assert stop.value.code == 130
    assert capsys.readouterr().err == "error: interrupted\n"


def test_importing_autotweak_is_light() -> None:
    """``import autotweak`` leaves Optuna and MLflow unimported until a public name is used."""
    code = (
        "import sys, autotweak, autotweak._entry\n"
        "heavy = [m for m in ('optuna', 'mlflow', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert autotweak.optimize.__module__.startswith('autotweak.engine')\n"
        "assert 'optuna' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_status_counts_the_trials_that_ran_and_says_the_queued_ones_apart(home, make_experiment, capsys):
    """As the report counts them: a trial queued to run again (an interrupted one's retry) has not run."""
    from autotweak.cli._main import main

    with autotweak_study(make_experiment(name="zero1")) as study:
        trial = study.ask()
        assert trial is not None
        study.tell(trial, 1.0)
    storage = optuna.storages.get_storage(f"sqlite:///{home / 'optuna.db'}")
    loaded = optuna.load_study(study_name="zero1", storage=storage)
    loaded.enqueue_trial({"x": 0.5})
    main(["status"])
    assert "zero1: 1 trial (1 queued), best 1" in capsys.readouterr().out


def test_an_error_is_shown_as_it_is_written_brackets_included(capsys):
    """Rich would read '[f]' as markup and drop it, and fail on '[/x]'."""
    Console().error("drop it (tweaks.drop: [f]), got '[/x]' and '[bold]tpe'.")
    assert capsys.readouterr().err == "error: drop it (tweaks.drop: [f]), got '[/x]' and '[bold]tpe'.\n"


def test_a_resume_with_its_compute_budget_spent_says_which_field_to_raise(home, capsys):
    cwd = home.parent
    _spec(cwd, budget={"compute": 2})
    assert in_process(capsys, "optimize", "exp.yaml", "-q").returncode == 0
    spent = in_process(capsys, "resume", "study", "-q")
    assert spent.returncode == 0, spent.stderr
    said = "no trial run: the study has spent its compute budget (2 full trainings, 'budget.compute')"
    assert said in spent.stderr


OLDER = ("v3.0.0.d", "its tables are of an older schema (set up by Optuna ")
NEWER = ("v99.0.0.a", "its tables are of a newer schema (set up by Optuna ")


@pytest.mark.parametrize(
    ("command", "revision", "said"),
    [(["status", "x"], *OLDER), (["best", "x"], *NEWER), (["optimize", "exp.yaml"], *OLDER)],
    ids=["status-older", "best-newer", "optimize-older"],
)
def test_a_storage_of_another_optuna_schema_says_how_to_upgrade_in_one_line(home, command, revision, said):
    cwd = home.parent
    _spec(cwd)
    url = f"sqlite:///{cwd / 'old.db'}"
    study = optuna.create_study(study_name="x", storage=url)
    study.optimize(lambda t: t.suggest_float("a", 0, 1), n_trials=1)
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE alembic_version SET version_num = :v"), {"v": revision})
    engine.dispose()
    run = autotweak(*command, "--storage", url, cwd=cwd)
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith(f"error: --storage: cannot open the store at '{url}': {said}"), run.stderr
    fix = f"`optuna storage upgrade --storage '{url}'`" if revision < "v4" else "pip install -U optuna"
    assert fix in run.stderr
