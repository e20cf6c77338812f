"""Where the stores live: the embedded default folder and the URLs that replace it."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sqlite3
from pathlib import Path

from autotweak._redact import is_redacted, redact, secret_query_keys
from autotweak._sqlite_stores import create_whole
from autotweak._sqlite_stores import enable_wal as enable_wal  # imported from here by the stores
from autotweak.exceptions import AutotweakError, StudyNotFoundError

__all__ = [
    "DEFAULT_HOME",
    "WHERE_STORAGE",
    "artifact_root",
    "check_optuna_sqlite",
    "sqlite_tables",
    "default_home",
    "check_storage_exists",
    "create_whole",
    "is_redacted",
    "missing_default_storage",
    "missing_sqlite_file",
    "redact",
    "resolve_storage_url",
    "secret_query_keys",
    "resolve_tracking_uri",
    "sqlite_path",
    "storage_problem",
    "storage_url_of",
    "tracking_uri_of",
    "tracking_problem",
]

DEFAULT_HOME = ".autotweak"
# How a user gives the storage that holds a study, in messages that did not find it.
WHERE_STORAGE = "--storage (CLI), $AUTOTWEAK_STORAGE or `storage` (spec or Python)"


def default_home() -> Path:
    """The embedded default folder: ``$AUTOTWEAK_HOME`` or ``./.autotweak``."""
    return Path(os.environ.get("AUTOTWEAK_HOME", DEFAULT_HOME)).resolve()


def storage_url_of(explicit: str | None) -> str:
    """Optuna storage URL: explicit value, else ``$AUTOTWEAK_STORAGE``, else embedded SQLite.

    A ``postgresql://`` URL gets the PostgreSQL driver that is installed (see
    :func:`with_postgres_driver`). Nothing is created: commands that only read use this.
    """
    url = explicit or os.environ.get("AUTOTWEAK_STORAGE")
    return with_postgres_driver(url) if url else _default_storage()


def resolve_storage_url(explicit: str | None) -> str:
    """As :func:`storage_url`, with the embedded default's folder created for a study to be written there."""
    url = storage_url_of(explicit)
    if url == _default_storage():
        default_home().mkdir(parents=True, exist_ok=True)
    return url


def _default_storage() -> str:
    return f"sqlite:///{default_home() / 'optuna.db'}"


def tracking_uri_of(explicit: str | None) -> str:
    """MLflow tracking URI: explicit value, else ``$MLFLOW_TRACKING_URI``, else embedded SQLite.

    A ``postgresql://`` URI gets the PostgreSQL driver that is installed (see
    :func:`with_postgres_driver`). Nothing is created.
    """
    uri = explicit or os.environ.get("MLFLOW_TRACKING_URI")
    return with_postgres_driver(uri) if uri else f"sqlite:///{default_home() / 'mlflow.db'}"


def resolve_tracking_uri(explicit: str | None) -> str:
    """As :func:`tracking_uri_of`, with the embedded default's folder created for MLflow to write there."""
    if not (explicit or os.environ.get("MLFLOW_TRACKING_URI")):
        default_home().mkdir(parents=True, exist_ok=True)
    return tracking_uri_of(explicit)


def storage_problem(url: str) -> str | None:
    """What is wrong with an Optuna storage URL, found before it is opened (``None``: nothing)."""
    if url == "memory":  # Optuna's in-memory storage, for replays and tests
        return None
    if "://" not in url:
        shown = Path(url).expanduser().resolve() if url.strip() else "path/to/optuna.db"
        return f"must be a database URL, such as sqlite:///{shown} or postgresql://user@host/db"
    return _database_problem(url)


def tracking_problem(uri: str) -> str | None:
    """What is wrong with an MLflow tracking URI, found before it is opened (``None``: nothing).

    MLflow 3 refuses its file store (a folder such as ``./mlruns``) unless
    ``MLFLOW_ALLOW_FILE_STORE`` is set; a database URI needs its driver.
    """
    if uri in ("databricks", "databricks-uc", "uc"):  # MLflow's names for Databricks
        return None
    scheme = uri.partition(":")[0].lower() if ":" in uri else ""
    file_store_allowed = os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() in ("1", "true", "yes")
    if (not scheme or len(scheme) == 1 or scheme == "file") and not file_store_allowed:  # C:\\ is a path
        return (
            "must be a database URI (such as sqlite:///mlflow.db) or a tracking server "
            "(http://host:port): MLflow 3 no longer writes to a folder such as ./mlruns"
        )
    if scheme.split("+")[0] in ("sqlite", "postgresql", "mysql", "mssql"):
        return _database_problem(uri)
    return None


def _database_problem(url: str) -> str | None:
    import sqlalchemy

    try:
        dialect = sqlalchemy.engine.make_url(with_postgres_driver(url)).get_dialect()
    except sqlalchemy.exc.ArgumentError:
        return "must be a database URL, such as sqlite:///path/optuna.db or postgresql://user@host/db"
    except sqlalchemy.exc.NoSuchModuleError:
        return f"names a database SQLAlchemy does not know ({url.partition(':')[0]!r})"
    except AutotweakError:  # postgresql:// without a driver
        return (
            "needs a PostgreSQL driver, and neither psycopg2 nor psycopg is installed; "
            "pip install 'autotweak[postgres]'"
        )
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        return f"needs the Python package of its driver '{dialect.driver}', which is not installed ({exc})"
    return None


def with_postgres_driver(url: str) -> str:
    """``url`` with its PostgreSQL driver named when a plain ``postgresql://`` would not load.

    SQLAlchemy 2.1 reads ``postgresql://`` as psycopg (version 3), while the ``postgres``
    extra installs psycopg2: such a URL becomes ``postgresql+psycopg2://`` when psycopg2
    is installed and psycopg is not. Other URLs are returned as they are.

    Raises:
        AutotweakError: For ``postgresql://`` when neither driver is installed.

    Example:
        >>> with_postgres_driver("sqlite:///optuna.db")
        'sqlite:///optuna.db'
    """
    scheme, sep, rest = url.partition("://")
    if scheme != "postgresql" or not sep or importlib.util.find_spec("psycopg") is not None:
        return url
    if importlib.util.find_spec("psycopg2") is None:
        raise AutotweakError(
            f"{redact(url)}: a postgresql:// URL needs a PostgreSQL driver, and neither psycopg2 nor "
            "psycopg is installed; pip install 'autotweak[postgres]'."
        )
    return f"postgresql+psycopg2://{rest}"


def sqlite_path(url: str) -> Path | None:
    """The database file a ``sqlite:///`` URL names, without its query options (``None``: no file).

    ``sqlite:///opt.db?timeout=30`` names ``opt.db``: every file autotweak derives from a
    store (the store made whole, its lock, its artifacts) is named from this path.

    Example:
        >>> str(sqlite_path("sqlite:///opt.db?timeout=30"))
        'opt.db'
        >>> sqlite_path("sqlite:///:memory:") is None
        True
    """
    scheme, sep, rest = url.partition(":///")
    path = rest.split("?", 1)[0]
    if not sep or scheme.split("+")[0] != "sqlite" or path in ("", ":memory:"):
        return None
    return Path(path)


def artifact_root(tracking_uri: str) -> str | None:
    """Artifact location for new MLflow experiments on a local database store.

    A tracking server decides its own artifact store, so ``None`` is returned for it.
    """
    db = sqlite_path(tracking_uri)
    return None if db is None else (db.parent / "artifacts").resolve().as_uri()


def model_files(suffix: str) -> list[Path]:
    """Shipped-model files ending in ``suffix``: ``$AUTOTWEAK_META_PATH`` folders first, then ``meta/``.

    ``meta/`` is the repository's folder in a checkout and ``autotweak/_data/meta`` in a wheel.
    """
    folders = [Path(p) for p in os.environ.get("AUTOTWEAK_META_PATH", "").split(os.pathsep) if p]
    here = Path(__file__).resolve().parent
    folders += [here / "_data" / "meta", here.parent / "meta"]
    return [path for folder in folders if folder.is_dir() for path in sorted(folder.glob("*" + suffix))]


def missing_sqlite_file(url: str) -> Path | None:
    """The database file a ``sqlite:///`` URL names when it does not exist (else ``None``).

    Readers check this first: SQLAlchemy would create an empty database for a misspelled path.
    """
    path = sqlite_path(url)
    return None if path is None or path.exists() else path


def sqlite_tables(url: str) -> list[str] | None:
    """The tables of the SQLite database a ``sqlite:///`` URL names, read only (``None``: not such a file).

    An empty file has no tables; a file SQLite cannot read raises :class:`sqlite3.DatabaseError`.
    """
    path = sqlite_path(url)
    if path is None or not path.is_file():
        return None
    if path.stat().st_size == 0:
        return []
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]


def check_storage_exists(url: str, label: str = "storage", study: str | None = None) -> None:
    """Refuse a ``sqlite:///`` storage whose file does not exist, creating nothing.

    Commands that read studies (``status``, ``best``, ``report``, ``resume``, ``worker``)
    would otherwise create an empty database, folders included, at a misspelled path and
    report "no studies" there. The embedded default store that does not exist yet is
    refused only when ``study`` is looked for in it: bare ``status`` says it holds none.

    Raises:
        AutotweakError: If ``url`` names a SQLite file that does not exist.
        StudyNotFoundError: If it is the embedded default and ``study`` is given.
    """
    path = missing_sqlite_file(url)
    if path is None:
        return
    if url != _default_storage():
        raise AutotweakError(
            f"{label}: no Optuna storage at {str(path)!r} (the file does not exist); check the path "
            "(`autotweak optimize` creates a study's storage)."
        )
    if study is not None:
        raise StudyNotFoundError(
            f"no study named '{study}': the default storage {path} does not exist (no study has run with "
            f"it); give the storage that holds the study: {WHERE_STORAGE}."
        )


def missing_default_storage(url: str) -> Path | None:
    """The embedded default store's file when ``url`` is that store and the file does not exist yet."""
    return missing_sqlite_file(url) if url == _default_storage() else None


def check_optuna_sqlite(url: str) -> None:
    """Refuse a ``sqlite:///`` URL whose database holds tables but not Optuna's.

    Optuna would add its tables to it (next to ``mlflow.db``'s, say) and then fail with a
    schema-version message that suggests upgrading Optuna.

    Raises:
        AutotweakError: Naming the URL and some of the tables found.
    """
    try:
        tables = sqlite_tables(url)
    except sqlite3.DatabaseError as exc:
        raise AutotweakError(
            f"{redact(url)}: must be an Optuna storage, got a file SQLite cannot read ({exc})."
        ) from None
    if tables and "studies" not in tables:
        shown = ", ".join(sorted(tables)[:5])
        hint = " (it looks like an MLflow store)" if "experiments" in tables else ""
        raise AutotweakError(
            f"{redact(url)}: must be an Optuna storage, got a database with other tables{hint}: {shown}."
        )
