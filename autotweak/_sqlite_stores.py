"""Making the embedded SQLite stores: whole or not at all, and fast for many writers."""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["create_whole", "enable_wal"]


def create_whole(path: Path, create: Callable[[str], None]) -> None:
    """Make a new SQLite store at ``path`` whole or not at all, with ``create(url)`` making its tables.

    MLflow and Optuna take seconds to make and migrate their tables; a process killed
    meanwhile would leave a half-made file that every later command fails to open
    ("table _alembic_tmp_tags already exists"). The tables are made in a file of another
    name, which is then linked in; a store another process made first is kept.
    """
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    building = path.with_name(f".{path.name}.{os.getpid()}.building")
    building.unlink(missing_ok=True)  # left by a killed process that had this pid
    try:
        create(f"sqlite:///{building}")
        try:
            os.link(building, path)
        except FileExistsError:
            pass  # made by another process meanwhile: as good
        except OSError:  # a file system without hard links
            if not path.exists():
                os.replace(building, path)
    finally:
        building.unlink(missing_ok=True)


def enable_wal(path: Path) -> None:
    """Put a SQLite store in WAL mode with ``synchronous=NORMAL`` for autotweak's connections.

    Worker processes share the embedded stores: WAL lets readers go on while one process
    writes. With ``synchronous=NORMAL`` a commit no longer waits for the disk, which
    makes each trial's record about ten milliseconds cheaper; SQLite guarantees that
    the database stays consistent, and only a power loss or an OS crash (not a killed
    process) can lose the last commits.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path, timeout=60) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
    _FAST_SQLITE.add(str(path.resolve()))
    _install_listener()


_FAST_SQLITE: set[str] = set()


@functools.cache
def _install_listener() -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.listen(Engine, "connect", _on_connect)


def _on_connect(dbapi_connection: Any, record: Any) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    files = {row[2] for row in dbapi_connection.execute("PRAGMA database_list").fetchall()}
    if files & _FAST_SQLITE:
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")
