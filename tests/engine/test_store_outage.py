"""A study rides out a storage outage: at a worker's start, in the monitor, and inside a trial.

The PostgreSQL tests stop the server for a few seconds and start it again, as a restart or
a failover does; the others break one storage call of an embedded SQLite store on cue.
"""

from __future__ import annotations

import optuna
import pytest
import sqlalchemy

from autotweak.engine._storage import retrying
from autotweak.exceptions import AutotweakError


def test_a_bad_write_is_not_retried_and_a_dropped_connection_names_the_storage():
    calls: list[int] = []

    def bad_data() -> None:
        calls.append(1)
        try:
            raise sqlalchemy.exc.DataError(
                "INSERT", {}, Exception("value too long for type character varying(2048)")
            )
        except sqlalchemy.exc.DataError as exc:
            raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from exc

    with pytest.raises(optuna.exceptions.StorageInternalError):
        retrying(bad_data, "writing", timeout=1.0)
    assert calls == [1], "invalid data is no outage"

    def refused() -> None:
        raise sqlalchemy.exc.OperationalError(
            "SELECT 1", {}, Exception("connection refused\nIs the server running?")
        )

    with pytest.raises(AutotweakError) as caught:
        retrying(refused, "loading the study", timeout=0.6, store="postgresql://ann:secret@db:5432/optuna")
    message = str(caught.value)
    assert message.startswith("the storage postgresql://ann:***@db:5432/optuna was unreachable for ")
    assert message.endswith(" s while loading the study (Exception: connection refused)")
