"""Hiding the secrets of a store's URL (a password, a token in the query) before it is shown."""

from __future__ import annotations

import re

__all__ = ["is_redacted", "redact", "secret_query_keys"]

_HIDDEN = "***"


# Query-string parameters that carry a secret: libpq's and MySQL's password, tokens, API keys.
# Paths to key files (sslkey, passfile) are not secrets and are left as they are.
_SECRET_KEY = re.compile(r"(^|_)(password|passwd|pwd|pass)$|token|secret|(api|access|private|auth)_?key$")


def _is_secret_key(name: str) -> bool:
    return bool(_SECRET_KEY.search(name.strip().lower().replace("-", "_")))


def secret_query_keys(url: str) -> list[str]:
    """The names of the query-string parameters of ``url`` that hold a secret (even an empty one).

    Example:
        >>> secret_query_keys("postgresql://u@db/optuna?host=db&password=x")
        ['password']
    """
    query = url.partition("?")[2].partition("#")[0]
    return [key for key, _, _ in (p.partition("=") for p in query.split("&") if p) if _is_secret_key(key)]


def redact(url: str) -> str:
    """Hide the password of a URL such as ``postgresql://user:secret@host/db``, and query-string secrets.

    A URL without a password is returned as it is, so that it can be copied back.

    Example:
        >>> redact("postgresql://me:secret@db:5432/optuna")
        'postgresql://me:***@db:5432/optuna'
        >>> redact("postgresql://me@db:5432/optuna")
        'postgresql://me@db:5432/optuna'
        >>> redact("postgresql://me@db/optuna?password=secret&sslmode=require")
        'postgresql://me@db/optuna?password=***&sslmode=require'
    """
    url = _redact_netloc(url)  # first: a password may hold a '?'
    head, mark, query = url.partition("?")
    if not mark:
        return url
    query, hash_, fragment = query.partition("#")
    return f"{head}?{'&'.join(_redact_pair(p) for p in query.split('&'))}{hash_}{fragment}"


def _redact_pair(pair: str) -> str:
    key, eq, _ = pair.partition("=")
    return f"{key}={_HIDDEN}" if eq and _is_secret_key(key) else pair


def _redact_netloc(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    netloc = rest.split("/", 1)[0]
    creds, at, host = netloc.rpartition("@")
    if not sep or not at or ":" not in creds:
        return url
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:{_HIDDEN}@{host}{rest[len(netloc) :]}"


def is_redacted(url: str) -> bool:
    """Whether ``url`` was written by :func:`redact` with a secret hidden: it cannot be used as it is."""
    _, sep, rest = url.partition("://")
    if bool(sep) and rest.split("/", 1)[0].rpartition("@")[0].endswith(":" + _HIDDEN):
        return True
    query = url.partition("?")[2].partition("#")[0]
    pairs = (p.partition("=") for p in query.split("&"))
    return any(value == _HIDDEN and _is_secret_key(key) for key, _, value in pairs)
