"""Executors: where the worker loop runs. One seam, several places."""

from __future__ import annotations

import abc
import copy
import logging
import multiprocessing as mp
import multiprocessing.connection
import os
import pickle
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from autotweak.engine._crashed import CrashSettler
from autotweak.engine._main_script import defined_at_top_level, unguarded_main_call
from autotweak.engine._processes import (
    Proc,
    forward_interrupt,
    main_file_readable,
    process_main,
    receive_result,
    start_context,
)
from autotweak.engine._worker import WorkerContext, WorkerResult, run_worker
from autotweak.exceptions import AutotweakError, SpecError
from autotweak.spec import Experiment
from autotweak.spec._objective import MAIN_GUARD

__all__ = [
    "BaseExecutor",
    "InlineExecutor",
    "ProcessExecutor",
    "EXECUTORS",
    "WorkerCrashError",
]

_log = logging.getLogger(__name__)

_NOT_STARTED = "before it started"


class WorkerCrashError(AutotweakError):
    """Every worker failed, so the study stopped with its budget unspent.

    Its trials and records are kept as they are: fix the cause, then resume the study.
    """

    def __init__(self, study_name: str, errors: list[str]) -> None:
        self.study_name = study_name
        self.errors = errors
        hint = ""
        if any(_NOT_STARTED in error for error in errors):
            hint = (
                " A worker that ends before it starts usually re-ran the script that called "
                "optimize(): worker processes import the main script again, so its module-level "
                f"code must sit under `{MAIN_GUARD}`."
            )
        super().__init__(
            f"every worker of study '{study_name}' failed, so its budget is not spent: "
            + "; ".join(errors)
            + "."
            + hint
            + f" The study is kept: fix the cause and continue it with `autotweak resume {study_name}`"
            " (or optimize(..., resume=True))."
        )


class BaseExecutor(abc.ABC):
    """Runs the worker loop somewhere and returns what each worker did.

    Attributes:
        detached: Whether its workers may outlive :meth:`run`: they run on machines whose
            processes it does not wait for, and may still be closing their trials when it
            returns (the study's close then leaves their fresh trials to them).
    """

    detached: bool = False

    @property
    def meta(self) -> dict[str, Any]:
        """What this executor is."""
        return {"name": type(self).__name__}

    @abc.abstractmethod
    def run(self, ctx: WorkerContext, objective: Callable[..., Any] | None) -> list[WorkerResult]:
        """Run workers for the study in ``ctx`` until its budget is spent."""

    def check_objective(self, objective: Callable[..., Any] | None) -> None:
        """Refuse, before any study exists, an objective this executor cannot run."""

    def check_setup(self, experiment: Experiment, storage_url: str, tracking_uri: str | None) -> None:
        """Refuse, before any study exists, settings or stores this executor cannot run with.

        Nothing is launched: a refused run must leave no study and no record behind.
        """


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

    A worker process that dies (the kernel's OOM killer, a crash in native code,
    ``os._exit``) has its trial failed as soon as its end is seen, saying why (see
    :mod:`~autotweak.engine._crashed`), not a grace period later as a lost worker, and is
    replaced, so that the study keeps its pace, until the study's fail-fast rule says
    otherwise.

    Args:
        workers: How many worker processes to run at once.
        settler: Settles a crashed worker's trial as soon as its process is seen to end,
            before the others do; by default one for the study :meth:`run` is given, which
            opens a storage and a tracker of its own as a worker first dies (``optimize`` and
            ``autotweak worker`` pass theirs, on the storage and tracker they hold: see
            :meth:`settled_by`).
    """

    def __init__(self, workers: int, settler: CrashSettler | None = None) -> None:
        self.workers = workers
        self.settler = settler

    @property
    def meta(self) -> dict[str, Any]:
        return {"name": "processes", "workers": self.workers}

    def settled_by(self, settler: CrashSettler) -> ProcessExecutor:
        """The executor, its dead workers' trials settled by ``settler`` unless it was given its own.

        A copy: the executor a caller passed is left as it was, to run another study.
        """
        if self.settler is not None:
            return self
        settled = copy.copy(self)
        settled.settler = settler
        return settled

    def check_objective(self, objective: Callable[..., Any] | None) -> None:
        """Workers receive a callable objective pickled: by reference to its module.

        Raises:
            SpecError: If the objective cannot be pickled (a lambda, a nested function), lives
                in an interactive session, which worker processes cannot import, or is
                defined in the main script under its ``__main__`` guard, which worker
                processes do not run.
        """
        if objective is None:
            return
        name = getattr(objective, "__qualname__", repr(objective))
        main = sys.modules.get("__main__")
        script = getattr(main, "__file__", None)
        in_main = getattr(objective, "__module__", None) == "__main__"
        if in_main and not (script and Path(script).is_file()):
            where = f"in {script}, which is not a file" if script else "in an interactive session"
            reason = f"it is defined {where}; worker processes cannot import it"
        elif in_main and defined_at_top_level(str(script), name) is False:
            reason = (
                f"{script} does not define it at module level (it is defined inside a block, such as "
                f"`{MAIN_GUARD}`, which worker processes do not run)"
            )
        else:
            try:
                pickle.dumps(objective)
                return
            except Exception as exc:
                reason = f"it cannot be pickled ({type(exc).__name__}: {exc})"
        raise SpecError(
            f"must be a function defined at the top level of an importable module (or a "
            f"'module:function' entry point) to run in {self.workers} worker processes, got "
            f"{name}: {reason}. Define it with `def` at module level, outside `{MAIN_GUARD}`, "
            "or run with workers: 1.",
            field="objective",
        )

    def check_setup(self, experiment: Experiment, storage_url: str, tracking_uri: str | None) -> None:
        """Refuse a call made by the main script's unguarded module-level code.

        Worker processes import the main script again before they run: such a call would
        start the study anew in each of them, and they would all fail before their first
        trial, leaving a study that never ran.

        Raises:
            AutotweakError: If the call comes from the main script's module-level code
                outside its ``__main__`` guard.
        """
        where = unguarded_main_call()
        if where is not None:
            raise AutotweakError(
                f"{where[0]}, line {where[1]}: the study is started by the script's module-level code, "
                f"which each of the {self.workers} worker processes runs again when it starts (they import "
                f"the script); put that code under `{MAIN_GUARD}`, or run with workers: 1."
            )

    def run(self, ctx: WorkerContext, objective: Callable[..., Any] | None) -> list[WorkerResult]:
        start = start_context()
        level = logging.getLogger("autotweak").getEffectiveLevel()
        environ = dict(os.environ)

        def launch(index: int) -> Proc:
            receiver, sender = start.Pipe(duplex=False)
            current = start.Array(
                "q", [-1, 0], lock=False
            )  # the Optuna id of the trial it runs; how many it took
            # Pickled here and loaded by the worker's own code (a callable objective travels
            # by reference), so that a failure to load it is the worker's error to report.
            work = pickle.dumps((replace(ctx, worker_index=index, local_workers=self.workers), objective))
            proc = start.Process(
                target=process_main,
                args=(index, work, sender, level, environ, current),
                name=f"autotweak-worker-{index}",
            )
            with main_file_readable():
                proc.start()
            sender.close()
            return proc, receiver, current

        settler = self.settler or CrashSettler.for_context(ctx)
        try:
            return self._start(launch, settler)
        finally:
            if self.settler is None:
                settler.close()

    def _start(self, launch: Callable[[int], Proc], settler: CrashSettler) -> list[WorkerResult]:
        procs: list[Proc] = []
        try:
            for index in range(self.workers):
                procs.append(launch(index))
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM while the workers start: those started stop cleanly
            forward_interrupt(procs)
            return self._collect(procs, launch, settler, interrupted=True) or [
                WorkerResult(stop_reason="interrupted", interrupted=True)
            ]
        return self._collect(procs, launch, settler)

    def _collect(
        self,
        procs: list[Proc],
        launch: Callable[[int], Proc],
        settler: CrashSettler,
        *,
        interrupted: bool = False,
    ) -> list[WorkerResult]:
        """Each worker's result, taken as it ends: a crash is said, and its trial failed, when it happens.

        A worker process that died (see :func:`_died`) is replaced, so that the study keeps
        its pace, unless the study's fail-fast rule says the objective is broken (see
        :class:`~autotweak.engine._crashed.CrashSettler`); one whose own code failed with a
        Python exception, or that ended before its code started, is not (the next would
        fail the same way).
        """
        results: dict[int, WorkerResult] = {}
        while len(results) < len(procs):
            try:
                mp.connection.wait([p.sentinel for i, (p, _, _) in enumerate(procs) if i not in results])
            except KeyboardInterrupt:
                interrupted = True
                forward_interrupt([p for i, p in enumerate(procs) if i not in results])
                continue
            for index, (proc, receiver, current) in enumerate(list(procs)):
                if index in results or proc.exitcode is None:
                    continue
                proc.join()
                results[index], died = _result_of(proc, receiver, current, interrupted=interrupted)
                if results[index].crashed:
                    settler.at_once(results[index])
                if died and not interrupted and settler.may_replace(proc.name):
                    _log.warning("starting autotweak-worker-%d in its place", len(procs))
                    results[index].replaced = True
                    procs.append(launch(len(procs)))
        if interrupted:
            for result in results.values():
                result.interrupted = True
        return [results[index] for index in range(len(procs))]


def _result_of(
    proc: Any, receiver: Connection, current: Any, *, interrupted: bool
) -> tuple[WorkerResult, bool]:
    """What an ended worker sent, or what its end says (a crash: its exit code, its trial); whether it died.

    A worker ended by SIGKILL while nobody told it to stop is marked ``killed``: on a
    machine that goes on running, the kernel's OOM killer is the likely sender. One that ended
    without a result before its code started, while the study was interrupted, was stopped by
    that interrupt (a terminal's Ctrl-C reaches every process of the group) as it imported the
    main script: it is interrupted, not failed.
    """
    started, result = receive_result(receiver)
    sent = result is not None
    if result is None and interrupted and not started and proc.exitcode != -signal.SIGKILL:
        # The Ctrl-C reached it too, as it imported the main script (torch, say): it was stopped,
        # not broken, and took no trial.
        return WorkerResult(stop_reason="interrupted", interrupted=True), False
    if result is None:
        when = "after it started" if started else _NOT_STARTED
        code = f"{proc.exitcode}{_signal_name(proc.exitcode)}"
        error = f"{proc.name} exited with code {code} {when}, without a result"
        result = WorkerResult(
            stop_reason=f"crashed (exit code {proc.exitcode})", error=error, trials=current[1]
        )
        result.killed = proc.exitcode == -signal.SIGKILL and not interrupted
    if result.error is not None:
        result.last_trial = current[0] if current[0] >= 0 else None
        left = "; its trial is failed, and runs again if its retries allow"
        left = "" if result.last_trial is None else left
        _log.error("worker failed: %s%s", result.error, left)
    return result, result.crashed and _died(proc.exitcode, started=started, sent=sent)


def _died(exitcode: int, *, started: bool, sent: bool) -> bool:
    """Whether a worker process died, rather than its worker failing: a new one may well run on.

    Killed by a signal (the kernel's OOM killer, a crash in native code), or ended without
    a result once its code ran (``os._exit(n)``, a native library's ``exit()``, in the
    objective): what ended it is a trial's, the config's, as a failed trial is, and the
    next process runs the next config. One whose own code failed with a Python exception
    (it sent that as its result), or that ended before its code started (importing the
    main script, say), did not die of a trial: the next would end the same way.
    """
    return exitcode < 0 or (started and not sent)


def _signal_name(exitcode: int) -> str:
    """`` (SIGSEGV)`` for a process ended by that signal (exit code -11), else nothing."""
    try:
        return f" ({signal.Signals(-exitcode).name})" if exitcode < 0 else ""
    except ValueError:
        return ""


EXECUTORS: dict[str, Callable[[int], BaseExecutor]] = {
    "inline": lambda workers: InlineExecutor(),
    "processes": ProcessExecutor,
}  # the aws-spot executor is a plug-in of this seam: autotweak.aws.SpotExecutor


def executor_for(workers: int) -> BaseExecutor:
    """The default executor: inline for one worker, processes for more."""
    return EXECUTORS["inline" if workers == 1 else "processes"](workers)
