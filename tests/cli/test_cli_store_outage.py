"""The CLI through a PostgreSQL restart: ``status``, ``best``, ``report`` read on; no one sees Optuna's SQL.

The commands run in this process, on a PostgreSQL server of this module's own: its
connection is killed inside one of Optuna's reads, or the server is stopped there and
started again, as a restart does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy
import yaml

import autotweak
from autotweak.cli import main
from autotweak.testing.services import Postgres
from tests.conftest import base_spec
from tests.helpers import drop_studies, silent_postgres

STUDY = "outage"
SQL_WARNING = "Caught an error from sqlalchemy"  # Optuna's own log line, with the query's SQL


@pytest.fixture
def pg_url(pg: Postgres, home: Any) -> Iterator[str]:
    """The Optuna database with the study of three trials; with a password, which a message must hide."""
    url = pg.url("optuna").replace("autotweak@", "autotweak:hush@")  # trust: any password is taken
    autotweak.optimize(base_spec(name=STUDY, budget={"trials": 3}, storage=url), track=False)
    yield url
    drop_studies(pg, url)


class _Outage:
    """Runs ``outage(session)`` once, inside Optuna's first read of the trials (between two queries).

    ``after_a_tell``: in the first read after a trial is told (a study's opening is past).
    """

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, outage: Callable[[Any], None], *, after_a_tell: bool = False
    ) -> None:
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import RDBStorage

        self.happened = False
        self.told = threading.Event()
        reading = threading.local()
        find, get_trials, tell = (
            models.StudyModel.find_or_raise_by_id,
            RDBStorage._get_trials,
            RDBStorage.set_trial_state_values,
        )

        def find_then_outage(study_id: int, session: Any, **kwargs: Any) -> Any:
            found = find(study_id, session, **kwargs)
            due = self.told.is_set() or not after_a_tell
            if getattr(reading, "trials", False) and due and not self.happened:
                self.happened = True
                outage(session)
            return found

        def get_trials_marked(storage: RDBStorage, *args: Any, **kwargs: Any) -> Any:
            reading.trials = True
            try:
                return get_trials(storage, *args, **kwargs)
            finally:
                reading.trials = False

        def tell_marked(storage: RDBStorage, trial_id: int, state: Any, values: Any = None) -> bool:
            self.told.set()
            return bool(tell(storage, trial_id, state, values))

        monkeypatch.setattr(models.StudyModel, "find_or_raise_by_id", find_then_outage)
        monkeypatch.setattr(RDBStorage, "_get_trials", get_trials_marked)
        monkeypatch.setattr(RDBStorage, "set_trial_state_values", tell_marked)

    def again(self) -> None:
        """Happen once more (after a tell, where so made)."""
        self.happened = False
        self.told.clear()


def _kill_connection(url: str) -> Callable[[Any], None]:
    def kill(session: Any) -> None:
        pid = session.execute(sqlalchemy.text("SELECT pg_backend_pid()")).scalar()
        killer = sqlalchemy.create_engine(url)
        with killer.begin() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        killer.dispose()

    return kill


def _restart(pg: Postgres, down: float) -> Callable[[Any], None]:
    def restart(session: Any) -> None:
        pg.ctl("stop", "-m", "fast")
        threading.Timer(down, pg.ctl, args=("start",)).start()

    return restart


COMMANDS = {
    "status": (["status", STUDY], f"{STUDY}: 3 complete; best "),
    "status, every study": (["status"], f"{STUDY}: 3 trials, best "),
    "best": (["best", STUDY], "trial "),
    "report": (["report", STUDY], f"# Study `{STUDY}`"),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_connection_killed_inside_a_read_is_read_again_without_optunas_sql(
    command, pg_url, monkeypatch, capfd
):
    args, said = COMMANDS[command]
    killed = _Outage(monkeypatch, _kill_connection(pg_url))
    main([*args, "--storage", pg_url])
    out, err = capfd.readouterr()
    assert killed.happened and out.startswith(said), out + err
    assert "is unreachable while " in err and "(OperationalError); retrying for up to 120 s" in err
    assert SQL_WARNING not in err and "SELECT" not in err and "Traceback" not in err, err
    assert "hush" not in err


def test_a_read_waits_for_a_restarting_server(pg, pg_url, monkeypatch, capfd):
    restarted = _Outage(monkeypatch, _restart(pg, down=2.0))
    main(["report", STUDY, "--storage", pg_url])
    out, err = capfd.readouterr()
    assert restarted.happened and out.startswith(f"# Study `{STUDY}`"), out + err
    assert f"is unreachable while reading study '{STUDY}'" in err and "Traceback" not in err, err


def test_a_server_that_stays_down_ends_the_command_in_one_line_with_the_fix(pg, pg_url, monkeypatch, capfd):
    monkeypatch.setattr("autotweak.engine._unreachable.RETRY_TIMEOUT", 1.0)
    stopped = _Outage(monkeypatch, lambda session: pg.ctl("stop", "-m", "fast"))
    with pytest.raises(SystemExit) as exited:
        main(["status", STUDY, "--storage", pg_url])
    err = capfd.readouterr().err
    assert stopped.happened and exited.value.code == 2
    (error,) = [line for line in err.splitlines() if "error" in line]
    shown = pg_url.replace(":hush@", ":***@")
    said = f"error: --storage: the storage {shown} was unreachable for 1 s while reading study '{STUDY}'"
    assert error.startswith(said), error
    assert "Connection refused); is its server running there? start it" in error, error
    assert "hush" not in err and "Traceback" not in err


def test_optimize_says_a_dropped_connection_without_optunas_sql_unless_vv(home, pg_url, monkeypatch, capfd):
    """Optuna's log stays for debugging: ``-vv`` shows its warning about a dropped connection."""
    spec = base_spec(name="quiet", budget={"trials": 2}, storage=pg_url)
    (home.parent / "exp.yaml").write_text(yaml.safe_dump(spec))
    killed = _Outage(monkeypatch, _kill_connection(pg_url), after_a_tell=True)
    main(["optimize", "exp.yaml"])
    out, err = capfd.readouterr()
    assert killed.happened and "study 'quiet' stopped (trials): 2 complete" in out, out + err
    assert "is unreachable while " in err and SQL_WARNING not in err and "SELECT" not in err, err
    killed.again()
    main(["optimize", "exp.yaml", "--name", "debugged", "-vv"])
    assert killed.happened and SQL_WARNING in capfd.readouterr().err


def test_a_server_that_never_answers_is_said_in_one_line_not_waited_on(home):
    """As behind a network partition that drops packets: status waited for ever in libpq's connect."""
    with silent_postgres() as url:
        run = subprocess.run(
            [sys.executable, "-m", "autotweak", "status", STUDY, "--storage", url],
            env={k: v for k, v in os.environ.items() if k != "PGCONNECT_TIMEOUT"},  # autotweak's own
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    (error,) = [line for line in run.stderr.splitlines() if "error" in line]
    assert "timeout expired; is its server running there?" in error, error
