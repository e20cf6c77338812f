"""What the CLI says when PostgreSQL drops its connection: in its own words, not Optuna's SQL.

The commands run in this process, on a PostgreSQL server of this module's own: its
connection is killed inside one of Optuna's reads, or the server is stopped there and
started again, as a restart does.
"""

from __future__ import annotations

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
from tests.helpers import drop_studies

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
