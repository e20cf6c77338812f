"""SIGTERM stops autotweak's own processes as Ctrl-C does.

Schedulers and containers stop a job with SIGTERM (``docker stop``, Kubernetes, SLURM,
systemd, a plain ``kill``), and SIGKILL it a while later. Left at its default, SIGTERM
ended the process at once: its trials were found only later by the heartbeat, its MLflow
runs stayed RUNNING, and the spot launcher left its instances to the watchdog. Routed to
the interrupt handler, it closes the study as interrupted, with the trials queued again.
SIGHUP (the terminal or the ssh session closed) does the same, unless it is ignored
(``nohup``), and what is printed afterwards goes nowhere instead of failing on a gone terminal.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["keep_lost_interrupts", "sigterm_as_ctrl_c", "stop_on_sigterm"]

_seen = {"sigterm": False}
_terminals: set[int] = set()  # stdout and stderr where they were a terminal when the handlers were set


def stop_on_sigterm() -> None:
    """Make SIGTERM interrupt this process as Ctrl-C does (call from the main thread).

    SIGTERM goes to whatever handles SIGINT when it arrives (the worker loop's, which holds
    an interrupt until a write to the stores is done), else raises ``KeyboardInterrupt``
    once: a second SIGTERM must not cut the closing of the study short. SIGTERM is an
    explicit request, so it stops a process that inherited SIGINT ignored (a background job).
    SIGHUP, unless ignored, does the same once stdout and stderr no longer reach the terminal.
    """
    if threading.current_thread() is not threading.main_thread():  # handlers can only be set there
        return
    signal.signal(signal.SIGTERM, _as_ctrl_c)
    if signal.getsignal(signal.SIGHUP) is signal.SIG_DFL:  # left alone where ignored (nohup)
        _terminals.update(fd for fd in (1, 2) if os.isatty(fd))  # a hung-up terminal no longer says so
        signal.signal(signal.SIGHUP, _hung_up)


@contextmanager
def keep_lost_interrupts(*, put_back: bool = False) -> Iterator[None]:
    """While the block runs, a Ctrl-C (or SIGTERM) that lands in a finalizer is delivered again, not lost.

    A signal handler's ``KeyboardInterrupt`` is raised in whatever Python code the main
    thread runs, a garbage-collection callback included (SQLAlchemy and MLflow, opening
    the stores, run many): Python cannot raise it from there, so it printed "Exception
    ignored in ..." with a ``KeyboardInterrupt`` traceback, and the command went on as if
    never stopped (a SIGTERM, said once, was then lost for good). Here such an interrupt
    is said nowhere and comes again as Ctrl-C a moment later, from a thread, once the
    callback has returned. After the block, one is dropped: the process is ending anyway.

    With ``put_back`` (the library's ``optimize`` and ``Study``, opening the stores in a
    script that goes on), the hook found is put back after the block instead.
    """
    previous = sys.unraisablehook
    live = [True]

    def hook(unraisable: sys.UnraisableHookArgs) -> None:
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            previous(unraisable)
        elif live[0] and not sys.is_finalizing():
            _thread.start_new_thread(_interrupt_soon, ())  # not from here: it would land in this hook

    sys.unraisablehook = hook
    try:
        yield
    finally:
        live[0] = False  # left installed: an interrupt in the interpreter's shutdown is still said nowhere
        if put_back and sys.unraisablehook is hook:
            sys.unraisablehook = previous


def _interrupt_soon() -> None:
    time.sleep(0.01)  # the hook and the callback that called it return first
    if callable(signal.getsignal(signal.SIGINT)):
        _thread.interrupt_main()
        return
    _seen["sigterm"] = False  # a background job ignores Ctrl-C: it was a SIGTERM, sent again
    os.kill(os.getpid(), signal.SIGTERM)


@contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP interrupt as Ctrl-C does; their defaults come back after.

    For the Python API (``optimize``, the ask/tell ``Study``): a script stopped by a
    scheduler, or whose terminal closed, closes its study as interrupted instead of dying
    with its MLflow runs RUNNING. Only from the main thread, and only for a signal left at
    its default handler: a handler of the user's (or the CLI's), or SIGHUP ignored
    (``nohup``), is left alone. Blocks may overlap (two ``Study`` objects open, the first
    closed or dropped first): the defaults come back as the last one ends.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with _ROUTING_LOCK:
        if not _routing:  # the first block routes; one that overlaps it shares its routing
            _route()
        _routing.append(None)
    _seen["sigterm"] = False  # a SIGTERM of an earlier study in this process no longer counts
    try:
        yield
    finally:
        _unroute()


# One entry per sigterm_as_ctrl_c block open; _routed: the signals the first routed, and how.
_routing: list[None] = []
_routed: list[tuple[signal.Signals, Callable[[int, FrameType | None], None]]] = []
_ROUTING_LOCK = threading.RLock()  # a study dropped unclosed ends its block from the collector


def _route() -> None:
    """Route SIGTERM and SIGHUP where at their default (or still routed by a block that ended on a thread)."""
    _routed[:] = [
        (number, handler)
        for number, handler in ((signal.SIGTERM, _as_ctrl_c), (signal.SIGHUP, _hung_up))
        if signal.getsignal(number) in (signal.SIG_DFL, handler)
    ]
    if (signal.SIGHUP, _hung_up) in _routed:
        _terminals.update(fd for fd in (1, 2) if os.isatty(fd))  # a hung-up terminal no longer says so
    for number, handler in _routed:
        signal.signal(number, handler)


def _unroute() -> None:
    """End one block; the last puts the defaults back, from the main thread, where still routed."""
    with _ROUTING_LOCK:
        _routing.pop()
        if _routing or threading.current_thread() is not threading.main_thread():  # an ask/tell Study
            return  # closed from a thread: handlers can only be set from the main one
        for number, handler in _routed:
            if signal.getsignal(number) is handler:  # one set since (the user's) is left alone
                signal.signal(number, signal.SIG_DFL)
        _routed.clear()


def _hung_up(signum: int, frame: FrameType | None) -> None:
    """The terminal is gone: what is printed while the study closes goes nowhere, then as SIGTERM."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in _terminals:
            os.dup2(devnull, fd)
    finally:
        os.close(devnull)
    _as_ctrl_c(signum, frame)


def _as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler is not signal.default_int_handler:
        handler(signal.SIGINT, frame)
        return
    if _seen["sigterm"]:
        return
    _seen["sigterm"] = True
    raise KeyboardInterrupt
