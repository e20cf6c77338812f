"""MLflow tracking servers forked from one process that imported MLflow's server once.

``mlflow server`` imports MLflow twice per start, the command's process and then its
gunicorn worker's (3-4 s each on a small machine), which a test that kills its server and
starts it again pays each time. A process of this module (run by its path, so that it
imports MLflow and gunicorn but not autotweak) imports them once; for each server asked
of it on its standard input, it forks a child which runs ``mlflow server`` with the same
arguments, in a session of its own. The command's code runs as it is, up to its last step:
where it would start ``python -m gunicorn ... mlflow.server:app``, the child runs gunicorn
itself, whose worker finds the app imported. A start takes a fraction of a second.

This leans on three private names of MLflow's (``mlflow.server._exec_cmd``, the step it
replaces, and ``handlers._tracking_store`` / ``_model_registry_store``, the stores it
resets): an MLflow upgrade that renames them fails every test server's start, with the
server's log in the error (tests only; the product never imports this module).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import traceback
from typing import Any


def _serve_in_process(cmd: list[str], *, extra_env: dict[str, str] | None = None, **_: Any) -> None:
    """What ``mlflow server`` runs last, ``python -m gunicorn ARGS mlflow.server:app``, run here."""
    from gunicorn.app.wsgiapp import run  # type: ignore[import-untyped]
    from mlflow.server import handlers

    if cmd[1:3] != ["-m", "gunicorn"]:
        raise RuntimeError(f"the MLflow server's command is not gunicorn's: {cmd}")
    os.environ.update(extra_env or {})
    # the command's stores were opened to set them up; gunicorn's worker, a new process
    # under `mlflow server`, opens its own from the environment
    handlers._tracking_store = None
    handlers._model_registry_store = None
    sys.argv = ["gunicorn", *cmd[3:]]
    run()
    sys.exit(0)


def _child(request: dict[str, Any]) -> None:
    """The forked child: ``mlflow server ARGV`` in a session of its own, its output to the log."""
    from mlflow import server
    from mlflow.cli import cli

    os.setsid()
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    os.environ.clear()
    os.environ.update(request["env"])
    server._exec_cmd = _serve_in_process  # type: ignore[attr-defined]
    sys.argv = ["mlflow", *request["argv"]]
    cli.main(args=request["argv"], prog_name="mlflow")


def main() -> None:
    """Import MLflow's server, then fork one server per line read (JSON: argv, env, log); write its pid.

    When its standard input closes (the tests' process ended, even by SIGKILL), the servers
    still running are killed: each runs in a session of its own, which nothing else ends.
    """
    # gunicorn first: mlflow.server then sets itself up as it does under gunicorn
    import gunicorn.app.wsgiapp  # type: ignore[import-untyped]  # noqa: F401
    import mlflow.cli
    import mlflow.server  # noqa: F401

    signal.signal(signal.SIGCHLD, _reap)  # the servers are reaped as they end
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            print(_fork(json.loads(line)), flush=True)
    finally:
        # blocked, no server is reaped any more: a pid of the set is a server's or a zombie's, not reused
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        for pid in list(_servers):  # a signal caught before the block may still be handled
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


_servers: set[int] = set()  # the servers forked that have not ended (their process groups' ids)


def _reap(*_: object) -> None:
    """Reap the servers that ended (SIGCHLD): their pids leave the set, and exist no more."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _servers.discard(pid)


def _fork(request: dict[str, Any]) -> int:
    """Fork the server ``request`` asks for; its pid, in the set before it can be reaped."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    try:
        pid = os.fork()
        if pid == 0:  # the server, then its gunicorn worker, end here, never back in this loop
            os._exit(_run_child(request))
        _servers.add(pid)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
    return pid


def _run_child(request: dict[str, Any]) -> int:
    """Run the server in the forked child; its exit status, after any error is written to its log."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
    code = 1
    try:
        _child(request)
        code = 0
    except SystemExit as end:
        code = _exit_status(end)
    except BaseException:  # os._exit would end the process before Python printed it
        traceback.print_exc()
    with contextlib.suppress(BaseException):
        sys.stdout.flush()
        sys.stderr.flush()
    return code


def _exit_status(end: SystemExit) -> int:
    """The status Python gives ``sys.exit(code)``: 0 for None, 1 (after printing it) for a message."""
    if end.code is None or isinstance(end.code, int):
        return end.code or 0
    print(end.code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    main()
