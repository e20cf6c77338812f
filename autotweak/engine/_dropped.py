"""An ask/tell ``Study`` the program dropped without closing it, as Python's own resources do.

An unclosed file that is garbage-collected is closed with a ``ResourceWarning``; so is a
``Study``: a notebook cell that makes a new one under the same name each time it runs kept
every earlier one's PostgreSQL connections (and its record writer's threads) until the
process ended. Its finalizer releases only what costs nothing to release: its storage
pool, its share of the ask lock's pool, its writer's threads once their queue is empty, and
SIGTERM's routing. It writes nothing to MLflow or Optuna (a finalizer runs wherever the
collector happens to run, and may not wait): its record and its running trials are left
as a worker killed at that moment leaves them (its trials go stale and run again; its
record is settled when the study is resumed). A study still referenced as Python exits is
closed in full then, as before.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from contextlib import ExitStack
from typing import Protocol

from autotweak.engine._budget import drop_connections
from autotweak.engine._prepare import Prepared
from autotweak.engine._writer import RecordWriter

__all__ = ["Unclosed", "at_exit_of", "release"]


class Unclosed(Protocol):
    """What an at-exit close needs of a study: :func:`at_exit_of`."""

    def _at_exit(self) -> None: ...


def at_exit_of(study: Unclosed) -> Callable[[], None]:
    """The study's ``_at_exit``, holding the study weakly: registered with ``atexit``, it keeps it alive.

    A study collected before Python exits was released by its finalizer (:func:`release`).
    """
    ref = weakref.ref(study)

    def at_exit() -> None:
        alive = ref()
        if alive is not None:
            alive._at_exit()

    return at_exit


def release(
    prepared: Prepared,
    *,
    writer: RecordWriter,
    sigterm: ExitStack,
    heartbeats: list[ExitStack],
    source: object,
    warn: Callable[..., None],
) -> None:
    """Release a collected study's connections, threads and signal routing; warn with a ``ResourceWarning``.

    ``heartbeats``: those of its trials still open, stopped first (a beat would reconnect the
    pool); ``source``: the study (``tracemalloc`` shows where it was made); ``warn``:
    :func:`warnings.warn`, bound before the interpreter's shutdown.
    """
    name, running = prepared.experiment.name, len(heartbeats)
    left = f"its MLflow run and {running} running trial(s) are" if running else "its MLflow run is"
    warn(
        f"unclosed autotweak.Study '{name}': its storage connections are closed, {left} left as a "
        "killed process leaves them (resume the study to settle them); use it in a "
        "'with Study(...) as study:' block or call close()",
        ResourceWarning,
        stacklevel=2,
        source=source,
    )
    for beating in heartbeats:
        beating.close()
    drop_connections(prepared.storage, prepared.context.storage_url)
    writer.let_go()
    sigterm.close()
