"""Budget accounting shared by all workers, read from the storage (the coordination truth)."""

from __future__ import annotations

import collections
import fcntl
import functools
import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import optuna
import sqlalchemy
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from autotweak._locations import sqlite_path
from autotweak.engine._storage import close_storage, rdb_backend
from autotweak.engine._study import ATTR
from autotweak.engine._summary import search_trials, study_compute
from autotweak.spec import Budget

__all__ = [
    "BudgetView",
    "ask_lock",
    "close_connections",
    "drop_connections",
    "hold_connections",
    "open_ask_lock",
    "sampler_exhausted",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BudgetView:
    """What the study has spent, as counted from its trials.

    A retried trial replaces the stale one it re-runs, so retries do not count twice.
    """

    counted: int
    waiting: int
    running: int
    compute: float

    @classmethod
    def read(cls, study: optuna.Study, steps: int | None, *, need_compute: bool) -> BudgetView:
        """Read the view from the storage; one COUNT query on an RDB storage when compute is not needed.

        Reading every trial costs milliseconds per ask on a long study; the counts need
        a single aggregate query over Optuna's tables, with a fallback for other storages.
        """
        if not need_compute:
            counts = _count_with_sql(study)
            if counts is not None:
                return cls(counted=counts[0], waiting=counts[1], running=counts[2], compute=0.0)
        return cls.of(study.get_trials(deepcopy=False), steps)

    @classmethod
    def of(cls, trials: list[FrozenTrial], steps: int | None) -> BudgetView:
        search = search_trials(trials)
        retries = sum(1 for t in search if ATTR.RETRY_OF in t.user_attrs)
        return cls(
            counted=len(search) - retries,
            waiting=sum(1 for t in trials if t.state == TrialState.WAITING),
            running=sum(1 for t in trials if t.state == TrialState.RUNNING),
            compute=study_compute(trials, steps),
        )

    def exhausted(self, budget: Budget, deadline: float | None) -> str | None:
        """Why no new trial may start, or ``None`` if one may."""
        if deadline is not None and time.time() >= deadline:
            return "wall time"
        if budget.compute is not None and self.compute >= budget.compute:
            return "compute"
        if self.waiting:
            return None
        if budget.trials is not None and self.counted >= budget.trials:
            return "trials"
        return None


@contextmanager
def ask_lock(storage_url: str, study_name: str) -> Iterator[None]:
    """Serialize budget check + ask between the processes that share a study's storage.

    Without it, N workers could each see one trial left and all start one. SQLite uses a
    file lock next to the database, PostgreSQL an advisory lock; other storages (MySQL)
    go without and may overshoot by at most ``workers - 1`` trials.
    """
    database = sqlite_path(storage_url)
    if database is not None:
        path = database.with_suffix(f".{_safe(study_name)}.lock")
        with path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    elif storage_url.startswith("postgresql"):
        key = int.from_bytes(hashlib.sha1(study_name.encode()).digest()[:8], "big", signed=True)
        with _advisory_lock(_lock_engine(storage_url), key):
            yield
    else:
        yield


@contextmanager
def _advisory_lock(engine: sqlalchemy.Engine, key: int) -> Iterator[None]:
    """A session-level advisory lock: PostgreSQL releases it if the holder's connection dies.

    Anything but a clean unlock and commit (a Ctrl-C in the lock's query, in the unlock,
    or in SQLAlchemy's commit) closes the connection instead of handing it back: a Ctrl-C
    in the commit left it in the pool inside a transaction, and one after the lock was
    taken would leave the lock held by the pool, waited for by every other process's ask.
    """
    conn = engine.connect()
    let_go = False
    try:
        conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
        try:
            yield
        finally:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            conn.commit()
            let_go = True
    finally:
        if not let_go:
            conn.invalidate()  # closed, not pooled: the server ends its transaction and its lock
        conn.close()


def hold_connections(storage_url: str) -> None:
    """Count one more study of this process open on ``storage_url`` (ask/tell, ``optimize``, ``join``).

    The ask lock's pool is the process's, one per URL, shared by all of them: the
    :func:`close_connections` of each but the last leaves it open to the others.
    """
    with _HOLDERS_LOCK:
        _count_dropped()
        _HOLDERS[storage_url] += 1


def close_connections(storage: BaseStorage, storage_url: str) -> None:
    """Close this process's connections to ``storage`` (at ``storage_url``): its pool's and the ask lock's.

    The ask lock's pool is closed with the last study of this process that holds it (see
    :func:`hold_connections`): closed under another, it would drop the connection that one
    holds the lock on into a pool nobody closes. Used again, each reconnects; see
    :func:`~autotweak.engine._storage.close_storage`.
    """
    close_storage(storage)
    if storage_url.startswith("postgresql"):
        with _HOLDERS_LOCK:
            _count_dropped()
            last = _last_holder(storage_url)
        if last:
            _lock_engine(storage_url).dispose()


def drop_connections(storage: BaseStorage, storage_url: str) -> None:
    """:func:`close_connections` for a study dropped unclosed, from the garbage collector's finalizer.

    The collector may run it in a thread that holds the count's lock (or in the middle of
    counting): it does not wait for the lock, and a study it cannot count now is counted by
    the next :func:`hold_connections` or :func:`close_connections` of the process.
    """
    close_storage(storage)
    if not storage_url.startswith("postgresql"):
        return
    if not _HOLDERS_LOCK.acquire(blocking=False):
        _DROPPED.append(storage_url)  # deque.append: atomic, no lock
        return
    try:
        last = _last_holder(storage_url)
    finally:
        _HOLDERS_LOCK.release()
    if last:
        _lock_engine(storage_url).dispose()


def _count_dropped() -> None:
    """Count the studies :func:`drop_connections` could not count (the count's lock held)."""
    while _DROPPED:
        url = _DROPPED.popleft()
        if _last_holder(url):
            _lock_engine(url).dispose()


def _last_holder(storage_url: str) -> bool:
    """Count one study on ``storage_url`` closed; whether none is left (or none was counted)."""
    _HOLDERS[storage_url] -= 1
    if _HOLDERS[storage_url] > 0:
        return False
    del _HOLDERS[storage_url]
    return True


def open_ask_lock(storage_url: str) -> None:
    """Connect the ask lock's pool now, so that the first ask does not do it inside the lock.

    Workers that start together queue for the lock; a connection opened inside it (a
    PostgreSQL backend started, authenticated) makes each of them wait for all the others'.
    """
    if storage_url.startswith("postgresql"):
        with _lock_engine(storage_url).connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))


@functools.cache
def _lock_engine(storage_url: str) -> sqlalchemy.Engine:
    """One small connection pool per storage and process, for the ask lock."""
    return sqlalchemy.create_engine(storage_url, pool_size=1, max_overflow=1, pool_pre_ping=True)


# Studies of this process open on each storage URL (see hold_connections).
_HOLDERS: collections.Counter[str] = collections.Counter()
_HOLDERS_LOCK = threading.Lock()
_DROPPED: collections.deque[str] = collections.deque()  # see drop_connections


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


_COUNT_SQL = """
SELECT
  COALESCE(SUM(CASE WHEN NOT EXISTS (
      SELECT 1 FROM trial_user_attributes a
      WHERE a.trial_id = t.trial_id
        AND (a.key = :retry_key OR (a.key = :ablation_key AND a.value_json = 'true'))
  ) THEN 1 ELSE 0 END), 0),
  COALESCE(SUM(CASE WHEN t.state = 'WAITING' THEN 1 ELSE 0 END), 0),
  COALESCE(SUM(CASE WHEN t.state = 'RUNNING' THEN 1 ELSE 0 END), 0)
FROM trials t WHERE t.study_id = :study_id
"""


def _count_with_sql(study: optuna.Study) -> tuple[int, int, int] | None:
    """(counted, waiting, running) from Optuna's RDB tables, or ``None`` if not an RDB storage."""
    storage = rdb_backend(study._storage)
    engine = getattr(storage, "engine", None)
    if engine is None:
        return None
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sqlalchemy.text(_COUNT_SQL),
                {"retry_key": ATTR.RETRY_OF, "ablation_key": ATTR.ABLATION, "study_id": study._study_id},
            ).one()
    except sqlalchemy.exc.SQLAlchemyError:
        _log.debug("counting trials with SQL failed; reading them instead", exc_info=True)
        return None
    return int(row[0]), int(row[1]), int(row[2])


def sampler_exhausted(study: optuna.Study, view: BudgetView) -> str | None:
    """``"grid exhausted"`` once a grid sampler has nothing left to propose and no trial waits.

    A queued retry of an interrupted, preempted or stale grid point runs first: Optuna's grid
    counts the failed attempt as visited, so the point would otherwise never run.
    """
    if view.waiting:
        return None
    is_exhausted = getattr(study.sampler, "is_exhausted", None)
    if callable(is_exhausted) and is_exhausted(study):
        return "grid exhausted"
    return None
