"""A quick look at a tracking server before a study depends on it.

MLflow's client retries a failed request for about four minutes before it raises; a
study started against a server that is down would sit silent that long, then fail with
MLflow's traceback. One request with a short timeout and no retry says it at once.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from autotweak._locations import redact
from autotweak.exceptions import TrackingError

__all__ = ["check_tracking_server", "failure_reason", "no_server_answers"]

_log = logging.getLogger(__name__)

_PROBE = "/api/2.0/mlflow/experiments/search"
_FIX = (  # the URI comes from one of these; the message cannot tell which
    "start it (scripts/team_stores.sh start) or fix the URI: `tracking_uri` (spec or Python), "
    "--tracking-uri (CLI) or MLFLOW_TRACKING_URI"
)
# Words in a failed connection's message (requests' and urllib3's), and what they mean.
_REASONS = (
    ("refused", "connection refused"),
    ("NameResolution", "host not found"),
    ("Name or service not known", "host not found"),
    ("timed out", "no answer within {timeout:g} s"),
    ("Timeout", "no answer within {timeout:g} s"),
    ("SSL", "TLS handshake failed"),
)
# The reasons that mean no server answers at all, as opposed to a server that answers badly.
_NO_ANSWER = frozenset({"connection refused", "host not found", "no answer within {timeout:g} s"})


def check_tracking_server(
    tracking_uri: str, *, timeout: float = 5.0, fix: str = _FIX, what: str = "tracking URI"
) -> None:
    """Raise at once when an ``http(s)://`` tracking URI has no MLflow server that answers.

    One request to MLflow's REST API (MLflow's own credentials and TLS settings apply),
    with no retry. Other URIs (a database store, ``databricks``) are not checked here.

    Args:
        tracking_uri: The MLflow tracking URI.
        timeout: Seconds to wait for the server's answer.
        fix: What the message advises (the option that gave the URI).
        what: What the message calls the URI (a model registry's is not a tracking URI).

    Raises:
        TrackingError: One line naming the URI and what went wrong: no server answers,
            the server refuses the credentials, or what answers is not MLflow's API.

    Example:
        >>> check_tracking_server("sqlite:///mlflow.db")  # not a server: nothing to check
    """
    if not tracking_uri.startswith(("http://", "https://")):
        return
    # MLflow's client would retry for minutes (its retries are set only through the environment);
    # these two are its undocumented helpers, checked in tests/tracking/test_server_check.py
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    where = f"{what} {redact(tracking_uri)}"
    try:
        response = http_request(  # type: ignore[no-untyped-call]
            get_default_host_creds(tracking_uri),  # type: ignore[no-untyped-call]
            _PROBE,
            "GET",
            max_retries=0,
            backoff_factor=0,
            timeout=timeout,
            raise_on_status=False,
            params={"max_results": 1},
        )
    except Exception as exc:
        reason = failure_reason(exc, timeout)
        raise TrackingError(f"{where}: no MLflow server answers ({reason}); {fix}") from None
    _check_answer(where, response.status_code, response.text, fix)
    _log.debug("%s: an MLflow server answers", where)


def _check_answer(where: str, status: int, text: str, fix: str = _FIX) -> None:
    """Refuse an answer that is not a readable MLflow experiments list."""
    if status in (401, 403):
        raise TrackingError(
            f"{where}: the MLflow server refuses the credentials (HTTP {status}); set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN"
        )
    body = _json(text)
    if status == 200 and isinstance(body, dict):
        return
    message = body.get("message") if isinstance(body, dict) else None
    detail = str(message).strip().splitlines()[0][:300] if message else "not MLflow's REST API"
    if message and status >= 500:  # MLflow's own error: its backend store, most often
        raise TrackingError(f"{where}: the MLflow server fails (HTTP {status}: {detail}); see its log")
    raise TrackingError(f"{where}: the server answers HTTP {status} ({detail}); {fix}")


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def failure_reason(exc: BaseException, timeout: float) -> str:
    """What went wrong with the connection, in a few words, from the exception and its causes."""
    reason = _matched(exc)
    if reason is not None:
        return reason.format(timeout=timeout)
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


def no_server_answers(exc: BaseException) -> bool:
    """Whether ``exc`` (or a cause) says the connection failed: refused, timed out, or no such host."""
    return _matched(exc) in _NO_ANSWER


def _matched(exc: BaseException) -> str | None:
    """The reason of :data:`_REASONS` whose words the exception or its causes say, if one does."""
    texts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(texts) < 10:
        texts.append(f"{type(seen).__name__}: {seen}")
        seen = seen.__cause__ or seen.__context__
    text = " ".join(texts)
    return next((reason for word, reason in _REASONS if word in text), None)
