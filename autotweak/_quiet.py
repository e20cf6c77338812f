"""Optuna's notes that do not apply inside autotweak's own loop, silenced there only."""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import optuna

__all__ = ["quiet_optuna"]

_quieted = threading.local()  # set in this thread inside quiet_optuna()


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Silence Optuna warnings that do not apply to autotweak's own loop.

    autotweak records heartbeats itself around ``ask``/``tell`` (Optuna assumes only
    ``Study.optimize`` does), relies on ``fail_stale_trials`` on purpose, and builds some
    experimental samplers (qmc) several times per study.
    """
    quiet = getattr(_quieted, "on", False)
    _quieted.on = True
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        try:
            yield
        finally:
            _quieted.on = quiet


class _QuietInfo(logging.Filter):
    """Drops Optuna's INFO lines ("A new study created in RDB...") inside :func:`quiet_optuna`.

    The library prints nothing a user did not ask for; a user's own Optuna calls, outside,
    keep their lines.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not getattr(_quieted, "on", False)


for _name in ("optuna.storages._rdb.storage", "optuna.storages._in_memory"):
    logging.getLogger(_name).addFilter(_QuietInfo())
