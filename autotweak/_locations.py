"""Where the stores live: the embedded default folder and the URLs that replace it."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DEFAULT_HOME", "artifact_root", "default_home", "redact", "resolve_storage_url", "resolve_tracking_uri"]

DEFAULT_HOME = ".autotweak"


def default_home() -> Path:
    """The embedded default folder: ``$AUTOTWEAK_HOME`` or ``./.autotweak``."""
    return Path(os.environ.get("AUTOTWEAK_HOME", DEFAULT_HOME)).resolve()


def resolve_storage_url(explicit: str | None) -> str:
    """Optuna storage URL: explicit value, else ``$AUTOTWEAK_STORAGE``, else embedded SQLite."""
    url = explicit or os.environ.get("AUTOTWEAK_STORAGE")
    if url:
        return url
    home = default_home()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'optuna.db'}"


def resolve_tracking_uri(explicit: str | None) -> str:
    """MLflow tracking URI: explicit value, else ``$MLFLOW_TRACKING_URI``, else embedded SQLite."""
    uri = explicit or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    home = default_home()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'mlflow.db'}"


def artifact_root(tracking_uri: str) -> str | None:
    """Artifact location for new MLflow experiments on a local database store.

    A tracking server decides its own artifact store, so ``None`` is returned for it.
    """
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    return (db.parent / "artifacts").resolve().as_uri()


def redact(url: str) -> str:
    """Hide a password in a URL such as ``postgresql://user:secret@host/db``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
