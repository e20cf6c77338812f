"""Local worker processes: how they start, what runs in them, how they are told to stop.

The plumbing under :class:`~autotweak.engine.ProcessExecutor`: the start context, each
process's main function (which must stay importable here: a worker loads it by name),
the messages it sends on its pipe, and the interrupts forwarded to it.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import pickle
import signal
import sys
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from autotweak._signals import stop_on_sigterm
from autotweak.engine._worker import WorkerResult, run_worker

__all__ = [
    "Proc",
    "forward_interrupt",
    "main_file_readable",
    "process_main",
    "receive_result",
    "start_context",
]

_log = logging.getLogger(__name__)

_STARTED = "started"  # a worker's first message: its own code runs
Proc = tuple[Any, Connection, Any]  # a worker process, its pipe, the trial it runs and how many it took


def receive_result(receiver: Connection) -> tuple[bool, WorkerResult | None]:
    """Whether the worker's own code started, and its result (``None`` if it died without one)."""
    started, result = False, None
    try:
        while receiver.poll():
            message = receiver.recv()
            if message == _STARTED:
                started = True
            else:
                result = message
    except (EOFError, OSError):
        pass
    return started, result


def forward_interrupt(procs: list[Proc]) -> None:
    for proc, _, _ in procs:
        if proc.is_alive() and proc.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)


def start_context() -> Any:
    """The fork server where the platform has one, spawn otherwise."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    start = mp.get_context("forkserver")
    start.set_forkserver_preload(["autotweak.engine._preload"])  # read once, when it starts
    return start


def process_main(
    index: int,
    work: bytes,
    sender: Connection,
    level: int,
    environ: dict[str, str],
    current: Any,
) -> None:
    try:
        sender.send(_STARTED)
    except OSError:  # the parent stopped (Ctrl-C, SIGTERM) while this process started: no work, no traceback
        return
    # A fork server started earlier holds the environment of that time: take today's.
    os.environ.clear()
    os.environ.update(environ)
    logger = logging.getLogger("autotweak")
    logger.setLevel(level)
    if all(isinstance(h, logging.NullHandler) for h in logger.handlers):  # none that shows anything
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(f"[worker {index}] %(levelname)s %(message)s"))
        logger.addHandler(handler)

    # Stopped as on Ctrl-C by the parent's forwarded SIGINT, by SIGTERM, or when the parent dies,
    # also where SIGINT was inherited ignored (a study started as a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    stop_on_sigterm()
    _stop_with_parent()

    def running(trial_id: int) -> None:
        current[0] = trial_id
        current[1] += 1

    try:
        ctx, objective = pickle.loads(work)
        # The schema was checked by the parent, on the same storage.
        result = run_worker(ctx, objective, schema_checked=True, on_trial=running)
    except KeyboardInterrupt:
        result = WorkerResult(stop_reason="interrupted", interrupted=True)
    except Exception as exc:  # the traceback goes to stderr as the process ends; the parent gets its gist
        _ignore_interrupts()
        error = f"{mp.current_process().name} failed with {type(exc).__name__}: {exc}"
        sender.send(WorkerResult(stop_reason="crashed (exit code 1)", error=error))
        sender.close()
        raise
    _ignore_interrupts()  # the work is done: a late SIGINT or SIGTERM must not cut the sending of the result
    with contextlib.suppress(OSError):  # a parent killed meanwhile reads nothing
        sender.send(result)
        sender.close()


def _ignore_interrupts() -> None:
    """Ignore SIGINT, SIGTERM and SIGHUP from here on (a second Ctrl-C, the parent's forwarded one)."""
    for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, signal.SIG_IGN)


@contextlib.contextmanager
def main_file_readable() -> Iterator[None]:
    """Hide a main script's ``__file__`` that names no file (``python - <<EOF``: ``<stdin>``) from workers.

    A new worker runs the main script again from its ``__file__``; one read from standard
    input has none to read, and every worker would fail. Hidden, workers start as under
    ``python -c``: the objective comes from an importable module (a function defined in
    such a script is refused before: see :meth:`ProcessExecutor.check_objective`).
    """
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    if main is None or script is None or Path(script).is_file():
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = script


def _stop_with_parent() -> None:
    """Stop this worker as Ctrl-C does (its trial recorded as interrupted, queued again) if its parent dies.

    Killed with ``kill -9``, the parent cannot forward an interrupt; without this, its
    workers would go on with the study alone, and a resume would run them twice over.
    """
    parent = mp.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()  # returns when the parent's end of the pipe that started this process closes
        name = mp.current_process().name
        _log.warning("%s: the process that started it is gone; stopping as on Ctrl-C", name)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, name="autotweak-parent-watch", daemon=True).start()
