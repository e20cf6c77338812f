"""Store URLs: a plain ``postgresql://`` works, and only a password that is there is hidden."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow import MlflowClient

from autotweak._locations import (
    is_redacted,
    redact,
    resolve_storage_url,
    resolve_tracking_uri,
    sqlite_path,
    storage_problem,
    tracking_problem,
)
from autotweak.cli._optimize import _experiment_from_storage
from autotweak.engine._study import ATTR
from autotweak.exceptions import AutotweakError
from autotweak.meta import load_meta_model
from autotweak.report._text import _tracking_uri
from autotweak.spec import Experiment
from tests.cli.test_cli import autotweak
from tests.conftest import base_spec


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg2://autotweak@db.example:5433/optuna",
        "http://127.0.0.1:5000",
        "sqlite:////data/at@home/optuna.db",
        "http://host/path/with@sign",
        "mysql://user@host/db?charset=utf8",
    ],
)
def test_redact_keeps_a_url_without_a_password(url):
    assert redact(url) == url
    assert not is_redacted(redact(url))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://me:secret@db:5432/optuna", "postgresql://me:***@db:5432/optuna"),
        ("https://me:p@ss@mlflow.example/x?y=1", "https://me:***@mlflow.example/x?y=1"),
        ("mysql://me:@db/optuna", "mysql://me:***@db/optuna"),
        (
            "postgresql+psycopg2://u@10.0.0.5:5433/optuna?password=secret",
            "postgresql+psycopg2://u@10.0.0.5:5433/optuna?password=***",
        ),
        ("postgresql://u@/optuna?host=db&password=secret", "postgresql://u@/optuna?host=db&password=***"),
        ("mysql://u@db/optuna?passwd=secret&charset=utf8", "mysql://u@db/optuna?passwd=***&charset=utf8"),
        ("http://host:5000/?token=secret", "http://host:5000/?token=***"),
        (
            "http://host:5000/?Api-Key=secret&client_id=me",
            "http://host:5000/?Api-Key=***&client_id=me",
        ),
        ("postgresql://me:se?cret@db/x?sslkey=/k.pem", "postgresql://me:***@db/x?sslkey=/k.pem"),
    ],
)
def test_redact_hides_a_password_that_is_there(url, shown):
    assert redact(url) == shown
    assert is_redacted(shown)
    assert "secret" not in redact(url)


def test_a_recorded_tracking_uri_without_a_password_is_used_again():
    study = optuna.create_study()
    study.set_user_attr(ATTR.TRACKING_URI, redact("http://mlflow@tracking.example:5000"))
    assert _tracking_uri(study, None) == "http://mlflow@tracking.example:5000"
    study.set_user_attr(ATTR.TRACKING_URI, redact("http://mlflow:secret@tracking.example:5000"))
    assert _tracking_uri(study, None) is None, "a hidden password cannot be used"


_HAS_PSYCOPG3 = importlib.util.find_spec("psycopg") is not None
_HAS_PSYCOPG2 = importlib.util.find_spec("psycopg2") is not None


@pytest.mark.skipif(_HAS_PSYCOPG3 or not _HAS_PSYCOPG2, reason="needs psycopg2 without psycopg (version 3)")
def test_a_plain_postgresql_url_gets_the_installed_driver(monkeypatch):
    monkeypatch.setenv("AUTOTWEAK_STORAGE", "postgresql://autotweak@db:5433/optuna")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://autotweak@db:5433/mlflow")
    assert resolve_storage_url(None) == "postgresql+psycopg2://autotweak@db:5433/optuna"
    assert resolve_tracking_uri(None) == "postgresql+psycopg2://autotweak@db:5433/mlflow"
    assert resolve_storage_url("postgresql+psycopg://a@db/x") == "postgresql+psycopg://a@db/x"


def test_a_plain_postgresql_url_stays_when_psycopg_is_installed(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name == "psycopg" else real(name)
    )
    assert resolve_storage_url("postgresql://autotweak@db/optuna") == "postgresql://autotweak@db/optuna"


def test_a_plain_postgresql_url_without_a_driver_is_one_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name.startswith("psycopg") else real(name)
    )
    with pytest.raises(AutotweakError, match=r"^postgresql://me:\*\*\*@db/optuna: .*autotweak\[postgres\]"):
        resolve_storage_url("postgresql://me:secret@db/optuna")


@pytest.mark.skipif(_HAS_PSYCOPG3 or not _HAS_PSYCOPG2, reason="needs psycopg2 without psycopg (version 3)")
def test_status_opens_a_plain_postgresql_url(pg, home):
    url = f"postgresql://autotweak@127.0.0.1:{pg.port}/optuna"
    optuna.create_study(study_name="plain-url", storage=pg.url("optuna"))
    done = subprocess.run(
        [sys.executable, "-m", "autotweak", "status", "--storage", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "plain-url" in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(_HAS_PSYCOPG3 or not _HAS_PSYCOPG2, reason="needs psycopg2 without psycopg (version 3)")
def test_meta_fit_reads_a_plain_postgresql_url(pg, home, tmp_path):
    url = f"postgresql://autotweak@127.0.0.1:{pg.port}/optuna"
    study = optuna.create_study(study_name="past", storage=pg.url("optuna"), direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", -5.0, 5.0), n_trials=6)
    space = tmp_path / "space.yaml"
    space.write_text("name: toy\nparams:\n  x: {type: float, low: -5.0, high: 5.0}\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "autotweak",
            "meta",
            "fit",
            "--space",
            str(space),
            "--optuna",
            url,
            "--out",
            "m.npz",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert f"optuna {redact(url)}: 1 task(s), 6 trial(s)" in done.stdout, done.stdout
    assert load_meta_model(tmp_path / "m.npz").tasks == ("past",)


_OPEN = {
    "mlflow.db": "from autotweak.tracking import MlflowTracker; MlflowTracker('sqlite:///{}').client.search_experiments()",
    "optuna.db": "from autotweak.engine._storage import make_storage; make_storage('sqlite:///{}').get_all_studies()",
}


@pytest.mark.parametrize("name", sorted(_OPEN))
@pytest.mark.parametrize(  # how far the tables got; the other moments run with the slow tests
    "after", [pytest.param(0.3, marks=pytest.mark.slow), 1.0, pytest.param(1.4, marks=pytest.mark.slow)]
)
def test_a_store_whose_creation_was_killed_opens_later(tmp_path, name, after):
    """kill -9 while MLflow or Optuna make their tables: the next command still opens the store."""
    import signal
    import time

    path = tmp_path / name
    code = _OPEN[name].format(path)
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 60
    while not any(tmp_path.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.01)  # the database file appears: its tables are being made
    time.sleep(after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not path.exists() or path.stat().st_size > 0
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert path.exists()


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///opt.db", "opt.db"),
        ("sqlite:///opt.db?timeout=30", "opt.db"),
        ("sqlite:////abs/dir/opt.db?timeout=30&check_same_thread=false", "/abs/dir/opt.db"),
        ("sqlite+pysqlite:///opt.db?timeout=30", "opt.db"),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("sqlite:///:memory:?cache=shared", None),
        ("postgresql://u@h/opt.db?sslmode=require", None),
        ("memory", None),
    ],
)
def test_the_file_of_a_sqlite_url_leaves_its_query_options_out(url, path):
    assert sqlite_path(url) == (None if path is None else Path(path))


def test_a_store_is_made_whole_or_not_at_all(tmp_path):
    from autotweak._locations import create_whole

    path = tmp_path / "store.db"

    def broken(url: str) -> None:
        import sqlite3

        sqlite3.connect(url.removeprefix("sqlite:///")).execute("CREATE TABLE half (x)")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        create_whole(path, broken)
    assert list(tmp_path.iterdir()) == [], "neither the store nor the file it was built in"
    create_whole(path, lambda url: sqlite3_table(url, "whole"))
    create_whole(path, broken)  # there already: not made again
    assert path.exists() and list(tmp_path.iterdir()) == [path]


def sqlite3_table(url: str, table: str) -> None:
    import sqlite3

    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        conn.execute(f"CREATE TABLE {table} (x)")


def test_a_half_built_store_left_under_this_pid_is_not_reused(tmp_path):
    """In a container every run may get the same pid: a killed build's file must not be taken up."""
    import os

    from autotweak._locations import create_whole

    path = tmp_path / "store.db"
    left = tmp_path / f".store.db.{os.getpid()}.building"
    sqlite3_table(f"sqlite:///{left}", "whole")  # what a killed build had made
    create_whole(path, lambda url: sqlite3_table(url, "whole"))  # "table whole already exists" if reused
    assert path.exists() and not left.exists()


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("optuna.db", "must be a database URL, such as sqlite:///"),
        ("mysql://h/x", "needs the Python package of its driver 'mysqldb'"),
        ("postgresql+psycopg://a@db/x" if not _HAS_PSYCOPG3 else "mysql://h/x", "needs the Python package"),
    ],
)
def test_a_storage_url_that_cannot_work_is_said_before_use(url, fragment):
    assert fragment in (storage_problem(url) or "")


def test_mlflows_file_store_is_refused_unless_mlflow_is_told_to_allow_it(monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    assert "MLflow 3 no longer writes to a folder such as ./mlruns" in (tracking_problem("./mlruns") or "")
    assert tracking_problem("http://127.0.0.1:5000") is None and tracking_problem("databricks") is None
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    assert tracking_problem("./mlruns") is None


def test_a_store_password_stays_out_of_the_records_and_a_resume_takes_it_again(pg, home):
    """The spec kept in the study and logged to MLflow hides the password; resuming by name still works."""
    secret = pg.url("optuna").replace("autotweak@", "autotweak:S3cret@")
    spec = home.parent / "exp.yaml"
    spec.write_text(yaml.safe_dump(base_spec(budget={"trials": 2}, storage=secret)))
    assert autotweak("optimize", str(spec), "-q", cwd=home.parent).returncode == 0
    study = optuna.load_study(study_name="study", storage=pg.url("optuna"))
    kept = json.dumps(study.user_attrs)
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    parent = client.get_run(study.user_attrs[ATTR.RUN_ID])
    logged = Path(client.download_artifacts(parent.info.run_id, "spec.json", str(home.parent))).read_text()
    assert "S3cret" not in kept and "S3cret" not in logged
    assert "autotweak:***@" in logged
    resumed = autotweak("resume", "study", "--trials", "3", "-q", "--storage", secret, cwd=home.parent)
    assert resumed.returncode == 0, resumed.stderr
    assert len(optuna.load_study(study_name="study", storage=pg.url("optuna")).trials) == 3


def test_a_tracking_uri_kept_without_its_password_must_be_given_again(home, monkeypatch):
    experiment = Experiment.from_dict(base_spec(tracking_uri="http://bob:hunter2@127.0.0.1:9/"))
    study = optuna.create_study(study_name="study", storage=f"sqlite:///{home / 'optuna.db'}")
    study.set_user_attr(ATTR.SPEC, experiment.to_dict())
    assert experiment.to_dict()["tracking_uri"] == "http://bob:***@127.0.0.1:9/"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(
        AutotweakError, match=r"without the password \(http://bob:\*\*\*@127.0.0.1:9/\); give it"
    ):
        _experiment_from_storage("study", None, None)
    given = _experiment_from_storage("study", None, "http://bob:hunter2@127.0.0.1:9/")
    assert given.tracking_uri == "http://bob:hunter2@127.0.0.1:9/"


def test_reading_an_optuna_storage_gives_its_connections_back(pg):
    import sqlalchemy

    from autotweak.meta import read_optuna
    from autotweak.space import SearchSpace

    pg.create_database("histories")  # its own: other tests here leave connections to 'optuna'
    study = optuna.create_study(study_name="past", storage=pg.url("histories"), direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", -5.0, 5.0), n_trials=6)
    study._storage._backend.engine.dispose()  # type: ignore[attr-defined]
    space = SearchSpace.from_dict({"x": {"type": "float", "low": -5.0, "high": 5.0}})
    assert read_optuna(pg.url("histories"), space=space).n_trials == 6
    watcher = sqlalchemy.create_engine(pg.url("postgres"), poolclass=sqlalchemy.pool.NullPool)
    with watcher.connect() as conn:
        count = "SELECT count(*) FROM pg_stat_activity WHERE datname = 'histories'"
        assert conn.execute(sqlalchemy.text(count)).scalar() == 0, "read_optuna's pool disposed"
