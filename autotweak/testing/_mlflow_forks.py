"""MLflow tracking servers forked from one process that imported MLflow's server once.

``mlflow server`` imports MLflow twice per start, the command's process and then its
gunicorn worker's (3-4 s each on a small machine), which a test that kills its server and
starts it again pays each time. A process of this module (run by its path, so that it
imports MLflow and gunicorn but not autotweak) imports them once; for each server asked
of it on its standard input, it forks a child which runs ``mlflow server`` with the same
arguments, in a session of its own. The command's code runs as it is, up to its last step:
where it would start ``python -m gunicorn ... mlflow.server:app``, the child runs gunicorn
itself, whose worker finds the app imported. A start takes a fraction of a second.
"""

from __future__ import annotations

import json
import os
import signal
import sys
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
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.environ.clear()
    os.environ.update(request["env"])
    server._exec_cmd = _serve_in_process  # type: ignore[attr-defined]
    sys.argv = ["mlflow", *request["argv"]]
    cli.main(args=request["argv"], prog_name="mlflow")


def main() -> None:
    """Import MLflow's server, then fork one server per line read (JSON: argv, env, log); write its pid."""
    # gunicorn first: mlflow.server then sets itself up as it does under gunicorn
    import gunicorn.app.wsgiapp  # type: ignore[import-untyped]  # noqa: F401
    import mlflow.cli
    import mlflow.server  # noqa: F401

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the servers are reaped as they end
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the server, then its gunicorn worker, end here, never back in this loop
            code = 1
            try:
                _child(request)
            except SystemExit as end:
                code = end.code if isinstance(end.code, int) else 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        print(pid, flush=True)


if __name__ == "__main__":
    main()
