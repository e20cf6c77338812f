"""The ask lock lets one process at a time check the budget and ask, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy

from autotweak.engine._budget import _lock_engine, ask_lock
from autotweak.testing.services import postgres
from tests.engine.lock_holder import hold


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with postgres() as server:
        server.create_database("locks")
        yield server.url("locks")


def _log_of_three_processes(url: str, log: Path) -> list[str]:
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=hold, args=(url, "study", str(log), 5)) for _ in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    return log.read_text().splitlines()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_no_two_processes_hold_it_at_once(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}" if kind == "sqlite" else request.getfixturevalue("pg_url")
    log = _log_of_three_processes(url, tmp_path / "log")
    assert len(log) == 30
    # every "in" is followed by the same process's "out": no two sections overlap
    for enter, leave in zip(log[0::2], log[1::2], strict=True):
        assert enter.startswith("in ") and leave == "out " + enter.removeprefix("in ")


class _Interrupt:
    """A Ctrl-C raised from inside SQLAlchemy, at one point of the ask lock's work on its connection."""

    def __init__(self, engine: sqlalchemy.Engine, point: str) -> None:
        self.event, _, self.statement = point.partition(":")
        self.engine = engine
        self.landed = False

    def __enter__(self) -> _Interrupt:
        sqlalchemy.event.listen(self.engine, self.event, self)
        return self

    def __exit__(self, *exc: object) -> None:
        sqlalchemy.event.remove(self.engine, self.event, self)

    def __call__(self, *args: object) -> None:
        statement = args[2] if len(args) > 2 else ""
        if not self.landed and self.statement in str(statement):
            self.landed = True
            raise KeyboardInterrupt


# Where a Ctrl-C lands: before the lock is taken, once it is (the server holds it), in the
# section, as it is let go, and in the commit after (the server's transaction still open).
POINTS = [
    "before_cursor_execute:pg_advisory_lock",
    "after_cursor_execute:pg_advisory_lock",
    "body",
    "before_cursor_execute:pg_advisory_unlock",
    "after_cursor_execute:pg_advisory_unlock",
    "commit",
]


@pytest.mark.parametrize("point", POINTS)
def test_a_ctrl_c_anywhere_in_the_lock_leaves_its_pooled_connection_clean(pg_url: str, point: str) -> None:
    """A Ctrl-C in the unlock or its commit left the pooled connection inside a transaction (or the
    lock held by this process, which every other worker's ask then waited for)."""
    engine = _lock_engine(pg_url)
    with ask_lock(pg_url, "warm"):  # the pool's connection, made before the Ctrl-C
        pass
    ctrl_c = _Interrupt(engine, point)
    with contextlib.ExitStack() as stack, pytest.raises(KeyboardInterrupt):
        if point != "body":
            stack.enter_context(ctrl_c)
        with ask_lock(pg_url, "interrupted"):
            if point == "body":
                raise KeyboardInterrupt
    assert ctrl_c.landed or point == "body", "the Ctrl-C landed where it was sent"
    other = sqlalchemy.create_engine(pg_url, poolclass=sqlalchemy.pool.NullPool)
    with other.connect() as conn:
        states = (
            conn.execute(
                sqlalchemy.text(
                    "SELECT state FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                )
            )
            .scalars()
            .all()
        )
        locks = sqlalchemy.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
        held = conn.execute(locks).scalar()
    assert "idle in transaction" not in states and held == 0, f"{states}, {held} advisory lock(s) held"
    with engine.connect() as conn:  # the pool's next connection passes its ping and runs
        assert conn.execute(sqlalchemy.text("SELECT 1")).scalar() == 1
    with ask_lock(pg_url, "interrupted"):
        pass
