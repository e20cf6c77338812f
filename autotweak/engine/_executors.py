"""Executors: where the worker loop runs. One seam, several places."""

from __future__ import annotations

import abc
import contextlib
import logging
import multiprocessing as mp
import os
import signal
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

from autotweak.engine._worker import WorkerContext, WorkerResult, run_worker

__all__ = ["BaseExecutor", "InlineExecutor", "ProcessExecutor", "EXECUTORS"]

_log = logging.getLogger(__name__)


class BaseExecutor(abc.ABC):
    """Runs the worker loop somewhere and returns what each worker did."""

    @property
    def meta(self) -> dict[str, Any]:
        """What this executor is."""
        return {"name": type(self).__name__}

    @abc.abstractmethod
    def run(self, ctx: WorkerContext, objective: Callable[..., Any] | None) -> list[WorkerResult]:
        """Run workers for the study in ``ctx`` until its budget is spent."""


class InlineExecutor(BaseExecutor):
    """Runs trials one after another in this process."""

    @property
    def meta(self) -> dict[str, Any]:
        return {"name": "inline", "workers": 1}

    def run(self, ctx: WorkerContext, objective: Callable[..., Any] | None) -> list[WorkerResult]:
        return [run_worker(ctx, objective)]


class ProcessExecutor(BaseExecutor):
    """Runs ``workers`` local worker processes on one storage.

    Workers start from a fork server that has already imported autotweak, Optuna and
    MLflow (where the platform has one; spawned otherwise), so that sixteen workers do not
    each spend two seconds of CPU importing them before their first trial. The fork server
    is a clean single-threaded process, never this one. Each worker takes this process's
    environment as it is when the workers start.

    Ctrl-C reaches every worker: each finishes its bookkeeping, records its running trial
    as interrupted, and exits; nothing is left half-written.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers

    @property
    def meta(self) -> dict[str, Any]:
        return {"name": "processes", "workers": self.workers}

    def run(self, ctx: WorkerContext, objective: Callable[..., Any] | None) -> list[WorkerResult]:
        start = _start_context()
        level = logging.getLogger("autotweak").getEffectiveLevel()
        environ = dict(os.environ)
        procs: list[tuple[Any, Connection]] = []
        for index in range(self.workers):
            receiver, sender = start.Pipe(duplex=False)
            proc = start.Process(
                target=_process_main,
                args=(
                    replace(ctx, worker_index=index, local_workers=self.workers),
                    objective,
                    sender,
                    level,
                    environ,
                ),
                name=f"autotweak-worker-{index}",
            )
            proc.start()
            sender.close()
            procs.append((proc, receiver))
        return self._collect(procs)

    def _collect(self, procs: list[tuple[Any, Connection]]) -> list[WorkerResult]:
        results: list[WorkerResult] = []
        interrupted = False
        for proc, receiver in procs:
            while True:
                try:
                    proc.join()
                    break
                except KeyboardInterrupt:
                    interrupted = True
                    _forward_interrupt(procs)
            result = _receive(receiver)
            if result is None:
                _log.error("worker %s exited with code %s without a result", proc.name, proc.exitcode)
                result = WorkerResult(stop_reason=f"crashed (exit code {proc.exitcode})")
            results.append(result)
        if interrupted:
            for result in results:
                result.interrupted = True
        return results


def _receive(receiver: Connection) -> WorkerResult | None:
    """The worker's result, or ``None`` if it died without sending one (e.g. SIGKILL)."""
    try:
        return receiver.recv() if receiver.poll() else None
    except (EOFError, OSError):
        return None


def _forward_interrupt(procs: list[tuple[Any, Connection]]) -> None:
    for proc, _ in procs:
        if proc.is_alive() and proc.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)


def _start_context() -> Any:
    """The fork server where the platform has one, spawn otherwise."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    start = mp.get_context("forkserver")
    start.set_forkserver_preload(["autotweak.engine._preload"])  # read once, when it starts
    return start


def _process_main(
    ctx: WorkerContext,
    objective: Callable[..., Any] | None,
    sender: Connection,
    level: int,
    environ: dict[str, str],
) -> None:
    # A fork server started earlier holds the environment of that time: take today's.
    os.environ.clear()
    os.environ.update(environ)
    logger = logging.getLogger("autotweak")
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(f"[worker {ctx.worker_index}] %(levelname)s %(message)s"))
        logger.addHandler(handler)
    try:
        result = run_worker(ctx, objective, schema_checked=True)  # by the parent, on the same storage
    except KeyboardInterrupt:
        result = WorkerResult(stop_reason="interrupted", interrupted=True)
    sender.send(result)
    sender.close()


def _aws_spot(workers: int) -> BaseExecutor:
    from autotweak.aws import SpotExecutor  # boto3 only when asked for

    return SpotExecutor(workers)


EXECUTORS: dict[str, Callable[[int], BaseExecutor]] = {
    "inline": lambda workers: InlineExecutor(),
    "processes": ProcessExecutor,
    "aws-spot": _aws_spot,
}


def executor_for(workers: int) -> BaseExecutor:
    """The default executor: inline for one worker, processes for more."""
    return EXECUTORS["inline" if workers == 1 else "processes"](workers)
