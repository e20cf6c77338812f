"""Where studies live: the embedded default folder, URLs, and Optuna's RDB storage.

Working through a storage that does not answer for a while (retries, heartbeats) is in
:mod:`~autotweak.engine._unreachable`.
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from collections.abc import Callable
from typing import Any

import optuna
import sqlalchemy
from optuna.storages import BaseStorage, InMemoryStorage, RDBStorage
from optuna.trial import FrozenTrial

from autotweak._locations import check_optuna_sqlite, create_whole, enable_wal, redact, sqlite_path
from autotweak._quiet import quiet_optuna
from autotweak.engine._contact import CONTACT

__all__ = [
    "close_storage",
    "CONNECT_TIMEOUT",
    "make_storage",
    "rdb_backend",
    "libpq_timeouts",
    "read_storage",
    "storage_name",
]

_log = logging.getLogger(__name__)

StaleCallback = Callable[[optuna.Study, FrozenTrial], None]


MEMORY = "memory"
CONNECT_TIMEOUT = 10  # seconds a PostgreSQL connection may take to open (libpq's connect_timeout)
# A PostgreSQL connection's dead peer is found within about half a minute, not TCP's defaults:
# keepalive probes after 10 s idle (a query waiting for its answer), and sent data left
# unacknowledged for 30 s (a query, or the pool's ping, sent into a network partition).
_LIBPQ_KEEPALIVES: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,  # milliseconds
}
_LIBPQ_DRIVERS = ("psycopg2", "psycopg")  # the drivers on libpq, which take its parameters


def _make_tables(url: str) -> None:
    """Optuna's tables, with their version, in the new SQLite database at ``url``."""
    with quiet_optuna():
        RDBStorage(url).engine.dispose()


def make_storage(
    url: str,
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    on_stale: StaleCallback | None = None,
    check_schema: bool = True,
) -> BaseStorage:
    """An Optuna RDB storage with heartbeats; SQLite gets WAL and a long busy timeout.

    ``check_schema=False`` skips creating missing tables and checking the schema version:
    for a worker process whose parent has just done both on the same storage (it saves
    the worker about 60 ms of CPU at start, which sixteen workers pay at once).

    ``"memory"`` gives Optuna's in-memory storage: no heartbeats, one process, nothing
    kept; for replays and tests that run thousands of short studies.

    SQLite is shared by worker processes on one machine; WAL lets readers go on while a
    writer commits, and the timeout turns lock contention into waiting instead of errors.
    """
    if url == MEMORY:
        return InMemoryStorage()
    engine_kwargs: dict[str, Any] = {}
    path = sqlite_path(url)
    if path is not None:
        check_optuna_sqlite(url)
        if check_schema:
            create_whole(path, _make_tables)
        enable_wal(path)
        if "timeout" not in urllib.parse.parse_qs(url.partition("?")[2]):  # the URL's own wins
            engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        engine_kwargs["pool_size"] = 2
        engine_kwargs["max_overflow"] = 2
        engine_kwargs["pool_pre_ping"] = True
        engine_kwargs["connect_args"] = libpq_timeouts(url)
    with quiet_optuna():
        storage = RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=on_stale,
            skip_compatibility_check=not check_schema,
            skip_table_creation=not check_schema,
        )
    if check_schema:
        CONTACT.reached()  # it read the schema's version
    return storage


def libpq_timeouts(url: str) -> dict[str, int]:
    """The connect timeout and TCP keepalives of a PostgreSQL URL, where the URL sets none of its own.

    libpq has no connect timeout of its own, and a connection's dead peer is found by TCP's
    retransmissions: a server behind a network partition that drops packets (rather than
    refusing them) made a worker hang for minutes in a connect or a query, unseen by
    :func:`retrying`. With these, the connect or the query fails as a dropped connection
    does, and is retried as one. ``$PGCONNECT_TIMEOUT`` is libpq's, and wins too.

    Example:
        >>> libpq_timeouts("postgresql+psycopg2://db/optuna?connect_timeout=3")["tcp_user_timeout"]
        30000
        >>> libpq_timeouts("sqlite:///optuna.db")
        {}
    """
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:  # not a database URL ("memory")
        return {}
    if parsed.get_backend_name() != "postgresql" or parsed.get_driver_name() not in _LIBPQ_DRIVERS:
        return {}
    wanted = {"connect_timeout": CONNECT_TIMEOUT, **_LIBPQ_KEEPALIVES}
    if "PGCONNECT_TIMEOUT" in os.environ:
        del wanted["connect_timeout"]
    return {key: value for key, value in wanted.items() if key not in parsed.query}


def read_storage(url: str) -> BaseStorage:
    """Optuna's storage of ``url`` to read (Optuna's cached one), PostgreSQL with :func:`libpq_timeouts`.

    For the commands and readers that only look at studies (``status``, ``report``,
    ``meta fit --optuna``): a server behind a network partition is an error in seconds,
    not a wait of minutes in libpq's connect.
    """
    timeouts = libpq_timeouts(url)
    if not timeouts:
        return optuna.storages.get_storage(url)
    return optuna.storages.get_storage(RDBStorage(url, engine_kwargs={"connect_args": timeouts}))


def close_storage(storage: BaseStorage) -> None:
    """Close the connections that ``storage``'s pool holds (an RDB storage's); used again, it reconnects.

    On PostgreSQL each counts to ``max_connections`` until the process ends: a script that
    runs studies one after another would hold those of every one.
    """
    backend = rdb_backend(storage)
    if backend is not None:
        backend.engine.dispose()


def rdb_backend(storage: BaseStorage) -> RDBStorage | None:
    """The RDB storage behind ``storage`` (Optuna wraps one in a cache), or ``None``."""
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, RDBStorage) else None


def storage_name(storage: BaseStorage | str) -> str:
    """A storage (or its URL) as shown in messages, its password hidden."""
    if isinstance(storage, str):
        try:
            return sqlalchemy.engine.make_url(storage).render_as_string(hide_password=True)
        except sqlalchemy.exc.ArgumentError:  # not a database URL ("memory")
            return redact(storage)
    backend = rdb_backend(storage)
    if backend is None:
        return type(getattr(storage, "_backend", storage)).__name__
    return backend.engine.url.render_as_string(hide_password=True)
