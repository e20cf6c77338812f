"""Which stores a command opens, and one line naming the option when one cannot be used."""

from __future__ import annotations

import os
import re
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from autotweak._locations import (
    check_optuna_sqlite,
    check_storage_exists,
    redact,
    storage_problem,
    storage_url_of,
    tracking_problem,
    tracking_uri_of,
)
from autotweak.exceptions import AutotweakError

if TYPE_CHECKING:
    import optuna

__all__ = [
    "error_said",
    "open_storage",
    "option_label",
    "reading",
    "storage_option",
    "store_failed",
    "stores",
    "tracking_option",
    "usable_storages",
    "usable_tracking_uris",
]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

# The stores this command opens, as (where the URL came from, the URL), for store errors.
stores: dict[str, tuple[str, str]] = {}
_SQLALCHEMY_OPEN_ERRORS = ("OperationalError", "NoSuchModuleError", "ArgumentError")
# Words in a database server's refusal (PostgreSQL's, MySQL's), and what to do about it.
_FIXES = (
    (
        ("Connection refused", "could not connect", "Can't connect", "timeout expired", "No route to host"),
        "is its server running there? start it (scripts/team_stores.sh start) or fix the URL's host and port",
    ),
    (
        ('role "',),
        "fix the user name in the URL (the stores of scripts/team_stores.sh have the user 'autotweak')",
    ),
    (
        ('database "', "Unknown database"),
        "create the database or fix its name in the URL (scripts/team_stores.sh start creates "
        "'optuna' and 'mlflow')",
    ),
    (
        ("password authentication failed", "no password supplied", "Access denied"),
        "fix the user name or password in the URL (postgresql://USER:PASSWORD@HOST:PORT/DATABASE)",
    ),
)


def open_storage(storage: str | None, study: str | None = None) -> optuna.storages.BaseStorage:
    """The Optuna storage of ``--storage`` (or its variable, or the embedded default), to read ``study``.

    A SQLite file that does not exist is not created: a misspelled path is refused, and so
    is the embedded default when ``study`` is looked for in it (nothing has run there).
    """
    url = storage_url_of(storage)
    stores["storage"] = (option_label("--storage"), url)
    check_storage_exists(url, "--storage", study)
    check_optuna_sqlite(url)
    from autotweak.engine._storage import read_storage

    return read_storage(url)  # the engine's timeouts: a partitioned server is said, not waited on


def reading(func: Callable[[], T], what: str) -> T:
    """``func()``, a read of the opened storage, retried while the storage is unreachable (a restart).

    The storage answered when it was opened: a connection lost since is waited out as the
    engine's workers wait (:func:`~autotweak.engine._unreachable.retrying`), and a read that
    failed halfway is done again from the start.
    """
    from autotweak.engine._unreachable import retrying

    return retrying(func, what, store=stores["storage"][1])


_ENVVARS = {
    "--storage": ("storage", "AUTOTWEAK_STORAGE"),
    "--tracking-uri": ("tracking_uri", "MLFLOW_TRACKING_URI"),
}


def option_label(flag: str) -> str:
    """``flag``, or ``flag (from $VAR)`` when the running command took its value from the variable."""
    name, envvar = _ENVVARS[flag]
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.get_parameter_source(name) == click.core.ParameterSource.ENVIRONMENT:
        return f"{flag} (from ${envvar})"
    return flag


def store_failed(exc: Exception) -> str | None:
    """One line naming the store, its option and URL, when ``exc`` is a store that cannot be used."""
    if type(exc).__name__ == "StorageInternalError" and isinstance(exc.__cause__, Exception):
        exc = exc.__cause__  # Optuna's wrapper of a database error met in a commit (opening: its version)
    kind = type(exc)
    if kind is RuntimeError and "compatible with the table schema" in str(exc):
        return _schema_refused(str(exc))
    if kind.__module__.startswith("mlflow") and "StoreURI" in kind.__name__:
        store = "tracking"  # MLflow's Unsupported*StoreURIException: a URI scheme it has no store for
    elif kind.__module__.startswith("sqlalchemy") and kind.__name__ in _SQLALCHEMY_OPEN_ERRORS:
        frames = traceback.extract_tb(exc.__traceback__)
        store = "tracking" if any(f"{os.sep}mlflow{os.sep}" in f.filename for f in frames) else "storage"
    else:
        return unusable_store()
    label, url = stores.get(store) or (
        (option_label("--storage"), storage_url_of(None))
        if store == "storage"
        else (option_label("--tracking-uri"), tracking_uri_of(None))
    )
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0].strip()
    return f"{label}: cannot open the store at {redact(url)!r}: {kind.__name__}: {reason}{_fix(reason)}"


def _schema_refused(message: str) -> str:
    """One line for Optuna's refusal of a storage whose tables another Optuna version set up."""
    import optuna

    label, url = stores.get("storage") or (option_label("--storage"), storage_url_of(None))
    found = re.search(r"set up by optuna ([^)\s]+)", message)
    by = f"Optuna {found[1]}" if found else "another Optuna"
    if "optuna storage upgrade" in message:
        fix = (
            f"its tables are of an older schema (set up by {by}) than Optuna {optuna.__version__} reads: "
            f"back it up, then run `optuna storage upgrade --storage '{redact(url)}'`"
        )
    else:
        fix = (
            f"its tables are of a newer schema (set up by {by}) than Optuna {optuna.__version__} knows: "
            "run a newer Optuna (pip install -U optuna), or the one that set it up"
        )
    return f"{label}: cannot open the store at {redact(url)!r}: {fix}"


def _fix(reason: str) -> str:
    """``; what to do`` about a database server's refusal, from its words (else nothing)."""
    return next((f"; {fix}" for words, fix in _FIXES if any(w in reason for w in words)), "")


def error_said(exc: AutotweakError) -> str:
    """How the CLI says ``exc``: a storage that stayed unreachable is named by its option, with the fix."""
    from autotweak.engine._unreachable import StorageUnreachableError

    if not isinstance(exc, StorageUnreachableError):
        return str(exc)
    label = stores.get("storage", ("--storage", ""))[0]
    fix = _fix(str(exc)) or "; check that its server is running, then run the command again"
    return f"{label}: {exc}{fix}"


def unusable_store() -> str | None:
    """One line for a store URL that cannot work (MLflow's file store, a driver not installed)."""
    for store, problem in (("storage", storage_problem), ("tracking", tracking_problem)):
        label, url = stores.get(store) or ("", "")
        found = problem(url) if url else None
        if found is not None:
            return f"{label}: cannot open the store at {redact(url)!r}: it {found}"
    return None


def _usable_url(problem: Callable[[str], str | None]) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback refusing a store URL that cannot work, naming the option or its variable."""

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        for url in value if isinstance(value, tuple) else (value,):  # a repeatable option gives a tuple
            found = problem(url) if isinstance(url, str) and url.strip() else None
            if found is not None:
                label = param.opts[0]
                if ctx.get_parameter_source(param.name or "") == click.core.ParameterSource.ENVIRONMENT:
                    label += f" (from ${param.envvar})"
                raise AutotweakError(f"{label}: cannot open the store at {redact(url)!r}: it {found}")
        return value

    return check


def _store_option(
    flag: str, envvar: str, problem: Callable[[str], str | None], what: str
) -> Callable[[F], F]:
    """A ``--storage`` / ``--tracking-uri`` option: its variable, and a URL that cannot work refused."""
    return click.option(
        flag,
        envvar=envvar,
        show_envvar=True,
        callback=_usable_url(problem),
        help=f"{what} (default: SQLite in ./.autotweak).",
    )


# Click callbacks of the history sources: each URL given can work, else the option is named.
usable_storages = _usable_url(storage_problem)
usable_tracking_uris = _usable_url(tracking_problem)


storage_option = _store_option("--storage", "AUTOTWEAK_STORAGE", storage_problem, "Optuna storage URL")
tracking_option = _store_option(
    "--tracking-uri", "MLFLOW_TRACKING_URI", tracking_problem, "MLflow tracking URI"
)
