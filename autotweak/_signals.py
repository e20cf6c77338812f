"""SIGTERM stops autotweak's own processes as Ctrl-C does.

Schedulers and containers stop a job with SIGTERM (``docker stop``, Kubernetes, SLURM,
systemd, a plain ``kill``), and SIGKILL it a while later. Left at its default, SIGTERM
ended the process at once: its trials were found only later by the heartbeat, its MLflow
runs stayed RUNNING, and the spot launcher left its instances to the watchdog. Routed to
the interrupt handler, it closes the study as interrupted, with the trials queued again.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

__all__ = ["stop_on_sigterm"]

_seen = {"sigterm": False}


def stop_on_sigterm() -> None:
    """Make SIGTERM interrupt this process as Ctrl-C does (call from the main thread).

    SIGTERM goes to whatever handles SIGINT when it arrives (the worker loop's, which holds
    an interrupt until a write to the stores is done), else raises ``KeyboardInterrupt``
    once: a second SIGTERM must not cut the closing of the study short. SIGTERM is an
    explicit request, so it stops a process that inherited SIGINT ignored (a background job).
    """
    if threading.current_thread() is threading.main_thread():  # handlers can only be set there
        signal.signal(signal.SIGTERM, _as_ctrl_c)


def _as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler is not signal.default_int_handler:
        handler(signal.SIGINT, frame)
        return
    if _seen["sigterm"]:
        return
    _seen["sigterm"] = True
    raise KeyboardInterrupt
