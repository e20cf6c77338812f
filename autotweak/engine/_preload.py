"""What the fork server of local workers loads once, so that no worker loads it again.

:class:`autotweak.engine.ProcessExecutor` starts workers from a fork server with this
module preloaded: the worker loop, the default sampler and pruner, the modules that
Optuna, SQLAlchemy and MLflow import lazily on a worker's first trial (the RDB storage,
its schema check, the SQL tracking store of the embedded default), and the package
versions that provenance tags name. Together they cost about 2.7 s of CPU per process;
sixteen workers on two cores would otherwise spend their first twenty seconds on them.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import signal

# A terminal's Ctrl-C reaches the fork server too, while it imports what follows (seconds on
# a busy machine): it printed a KeyboardInterrupt traceback from deep inside MLflow. The
# parent closes the study; the fork server ignores Ctrl-C, as it does anyway once started,
# and puts the handler back at the end, for the workers it forks to inherit.
_INTERRUPT = signal.signal(signal.SIGINT, signal.SIG_IGN)

import autotweak.curves._library  # noqa: E402
import autotweak.curves._pruner  # noqa: E402
import autotweak.engine._executors  # noqa: E402
import autotweak.meta._library  # noqa: E402
import autotweak.meta._sampler  # noqa: E402, F401  (the packages import their names on first use)
from autotweak.engine._provenance import package_versions  # noqa: E402

_LAZY = (
    "email.policy",  # importlib.metadata
    "netrc",  # requests
    "mlflow.tracking.request_header.registry",
    "mlflow.store.tracking.sqlalchemy_store",
    "optuna.storages._rdb.models",  # SQLAlchemy's ORM: the RDB storage's and the stale-trial sweep's
    "alembic.runtime.migration",
    "psycopg2.extras",
)

for _name in _LAZY:
    with contextlib.suppress(ImportError):  # a driver or store this installation does not use
        importlib.import_module(_name)

# The parent learns its workers' exit codes through the fork server: a SIGTERM sent to the
# whole process group (SLURM, `kill -TERM -PGID`), or the SIGHUP of a closed terminal, must
# not end it while the workers close their trials. It ends when the parent does; each worker
# sets its own SIGTERM handler, and stops on SIGHUP through the parent's forwarded SIGINT.
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)

package_versions()  # scanning the installed distributions takes 60 ms: once, here

signal.signal(signal.SIGINT, _INTERRUPT)

# Workers fork from here: leave what is loaded out of their garbage collection, so that a
# collection does not touch (and copy) every page they share with the fork server.
gc.freeze()
