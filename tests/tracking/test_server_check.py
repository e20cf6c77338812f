"""``check_tracking_server``: a tracking server that cannot serve is one line, in seconds."""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from autotweak.exceptions import TrackingError
from autotweak.testing.services import free_port, mlflow_server
from autotweak.tracking import check_tracking_server
from tests.helpers import MLFLOW_OK, fake_server


def test_nothing_listening_is_one_line_at_once():
    uri = f"http://127.0.0.1:{free_port()}"
    began = time.monotonic()
    with pytest.raises(TrackingError) as caught:
        check_tracking_server(uri)
    assert time.monotonic() - began < 10
    assert str(caught.value) == (
        f"tracking URI {uri}: no MLflow server answers (connection refused); "
        "start it (scripts/team_stores.sh start) or fix the URI: `tracking_uri` (spec or Python), "
        "--tracking-uri (CLI) or MLFLOW_TRACKING_URI"
    )


def test_a_password_in_the_uri_is_not_shown():
    with pytest.raises(TrackingError, match=r"http://me:\*\*\*@127.0.0.1") as caught:
        check_tracking_server(f"http://me:secret@127.0.0.1:{free_port()}")
    assert "secret" not in str(caught.value)


def test_a_server_that_does_not_answer_in_time():
    with socket_that_never_answers() as uri, pytest.raises(TrackingError, match=r"no answer within 1 s"):
        check_tracking_server(uri, timeout=1)


@contextmanager
def socket_that_never_answers() -> Iterator[str]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ((404, "text/html", "<h1>Not Found</h1>"), r"the server answers HTTP 404 \(not MLflow's REST API\)"),
        ((200, "text/html", "<html>a web page</html>"), r"HTTP 200 \(not MLflow's REST API\)"),
        ((401, "text/plain", "You are not authenticated"), r"refuses the credentials \(HTTP 401\)"),
        (
            (
                500,
                "application/json",
                json.dumps({"error_code": "INTERNAL_ERROR", "message": "db down\nmore"}),
            ),
            r"the MLflow server fails \(HTTP 500: db down\); see its log$",
        ),
    ],
)
def test_an_answer_that_is_not_mlflows_is_named(answer, expected):
    with fake_server(lambda path: answer) as uri, pytest.raises(TrackingError, match=expected):
        check_tracking_server(uri)


def test_a_server_that_answers_as_mlflow_passes():
    with fake_server(lambda path: MLFLOW_OK) as uri:
        check_tracking_server(uri)
        check_tracking_server(uri + "/")


@pytest.mark.parametrize(
    ("env", "authorization"),
    [
        ({"MLFLOW_TRACKING_USERNAME": "me", "MLFLOW_TRACKING_PASSWORD": "pw"}, "Basic bWU6cHc="),
        ({"MLFLOW_TRACKING_TOKEN": "tok"}, "Bearer tok"),
    ],
)
def test_mlflows_own_credentials_are_sent(monkeypatch, tmp_path, env, authorization):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.mlflow/credentials
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    seen: list[dict[str, str]] = []
    with fake_server(lambda path: MLFLOW_OK, seen) as uri:
        check_tracking_server(uri)
    assert [headers.get("Authorization") for headers in seen] == [authorization]


def test_the_mlflow_names_the_check_uses_still_take_what_it_passes():
    """``mlflow.utils`` is not MLflow's documented API: an upgrade that moves these names fails here."""
    import mlflow
    from mlflow.utils import credentials, rest_utils

    where = (
        f"the installed MLflow {mlflow.__version__} (checked with 3.17.2); see autotweak/tracking/_server.py"
    )
    creds = getattr(credentials, "get_default_host_creds", None)
    assert creds is not None, f"mlflow.utils.credentials.get_default_host_creds is gone from {where}"
    assert creds("http://127.0.0.1:1").host == "http://127.0.0.1:1", where
    passed = {"max_retries", "backoff_factor", "timeout", "raise_on_status"}
    taken = set(inspect.signature(rest_utils.http_request).parameters)
    assert passed <= taken, f"mlflow.utils.rest_utils.http_request lacks {sorted(passed - taken)} in {where}"


def test_other_uris_are_not_checked(tmp_path):
    check_tracking_server(f"sqlite:///{tmp_path / 'nowhere' / 'mlflow.db'}")
    assert not (tmp_path / "nowhere").exists()


def test_a_real_mlflow_server_passes(tmp_path):
    with mlflow_server(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts") as uri:
        check_tracking_server(uri)
