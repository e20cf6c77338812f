"""An ask/tell ``Study`` the program leaves unclosed: dropped, then closed in full as Python exits.

An unclosed file that is garbage-collected is closed with a ``ResourceWarning``; so are a
``Study``'s connections: a notebook cell that makes a new one under the same name each time
it runs kept every earlier one's PostgreSQL connections (and its record writer's threads)
until the process ended. Its finalizer releases only what costs nothing to release: its
storage pool (disposed: used again, it reconnects), its share of the ask lock's pool, its
trials' heartbeats, its writer's threads once their queue is empty (its later writes are
made on the caller's thread), and SIGTERM's routing. It writes nothing to MLflow or Optuna
then (a finalizer runs wherever the collector happens to run, and may not wait): it hands
the study to ``atexit`` instead, which keeps it alive (PEP 442), and Python's exit closes it
as it closes a study still referenced: its running trials queued again, its MLflow run
ended, with a warning on the ``autotweak`` logger that says so (:func:`say_closed_at_exit`;
the ``ResourceWarning`` is hidden by default). Of the Study objects of one study made in the
process, only the newest closes the study's record as Python exits (:func:`newest`): a drop
changes the order of ``atexit`` (last registered first), and the newest may have been
closed already.
"""

from __future__ import annotations

import itertools
import logging
import weakref
from collections.abc import Callable
from contextlib import ExitStack
from typing import Protocol

from autotweak.engine._budget import drop_connections
from autotweak.engine._prepare import Prepared
from autotweak.engine._writer import RecordWriter

__all__ = ["Unclosed", "at_exit_of", "made", "newest", "release", "say_closed_at_exit"]

_log = logging.getLogger(__name__)

# The last Study made in this process of each (storage URL, study name): see newest.
_NEWEST: dict[tuple[str, str], int] = {}
_SERIALS = itertools.count()


class Unclosed(Protocol):
    """What an at-exit close needs of a study: :func:`at_exit_of`."""

    def _at_exit(self) -> None: ...


def at_exit_of(study: Unclosed) -> Callable[[], None]:
    """The study's ``_at_exit``, holding the study weakly: registered with ``atexit``, it keeps it alive.

    A study collected before Python exits was released by its finalizer (:func:`release`),
    which registers its ``_at_exit`` itself.
    """
    ref = weakref.ref(study)

    def at_exit() -> None:
        alive = ref()
        if alive is not None:
            alive._at_exit()

    return at_exit


def made(storage_url: str, name: str) -> tuple[str, str, int]:
    """A token for a Study of ``name`` on ``storage_url`` just made: the newest of that study now."""
    serial = next(_SERIALS)
    _NEWEST[storage_url, name] = serial  # one dict store: atomic, no lock
    return storage_url, name, serial


def newest(token: tuple[str, str, int]) -> bool:
    """Whether no Study of the same study was made after the one of ``token`` (:func:`made`) in this process.

    An older one closed as Python exits leaves the study's record (its MLflow status and
    summary) to the newer one: ``atexit`` closes the studies in the reverse order of their
    registration, which a dropped study's (:func:`release`) changes.
    """
    storage_url, name, serial = token
    return _NEWEST.get((storage_url, name)) == serial


def release(
    prepared: Prepared,
    *,
    writer: RecordWriter,
    sigterm: ExitStack,
    heartbeats: list[ExitStack],
    source: object,
    warn: Callable[..., None],
) -> None:
    """Release a dropped study's connections, threads and signal routing; warn with a ``ResourceWarning``.

    ``heartbeats``: those of its trials still open, stopped first (a beat would reconnect the
    pool); ``source``: the study (``tracemalloc`` shows where it was made); ``warn``:
    :func:`warnings.warn`, bound before the interpreter's shutdown.
    """
    name, running = prepared.experiment.name, len(heartbeats)
    left = f"its MLflow run and {running} running trial(s) are" if running else "its MLflow run is"
    warn(
        f"unclosed autotweak.Study '{name}': its storage connections are closed, {left} closed as "
        "Python exits; use it in a 'with Study(...) as study:' block or call close()",
        ResourceWarning,
        stacklevel=2,
        source=source,
    )
    for beating in heartbeats:
        beating.close()
    drop_connections(prepared.storage, prepared.context.storage_url)
    writer.let_go()
    sigterm.close()


def say_closed_at_exit(name: str, cut: int, *, resume: str, dropped: bool, settled: bool) -> None:
    """Warn that study ``name`` was closed as Python exits, ``cut`` running trials queued again.

    ``dropped``: the program dropped it before (its connections were released then);
    ``settled``: its record was closed (else left to a newer Study of the same name).
    """
    _log.warning(
        "study '%s' was not closed (use it in a with block, or call close()): closed as Python exits%s%s%s",
        name,
        f", {cut} running trial(s) queued again; {resume} continues it" if cut else "",
        "; the program had dropped it (its storage connections were closed then)" if dropped else "",
        "" if settled else "; its record is left to the newer Study of the same name",
    )
