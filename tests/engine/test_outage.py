"""A tracking server that stops answering is said once per session, by whichever process finds it first."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
import pytest

from autotweak.engine._outage import OutageNotice, outage_of

DOWN = "tracking URI http://127.0.0.1:1: no MLflow server answers (connection refused)"


def _said(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [
        (r.levelno, r.getMessage().split(";")[0]) for r in caplog.records if r.name.startswith("autotweak")
    ]


def test_the_first_process_of_a_session_warns_the_others_log_it_and_another_session_warns_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=url)
    first, second = (OutageNotice(study, url, "run-1", "http://127.0.0.1:1") for _ in range(2))
    joined = OutageNotice(study, url, "worker-1", "http://127.0.0.1:1")
    with caplog.at_level(logging.INFO, logger="autotweak"):
        first(DOWN)
        second(DOWN)
        joined(DOWN)  # another terminal: told too
        second(None)
        first(None)
        first.answered()  # a close that finds it back, said already: nothing
    not_written = (
        "study 's': trial records are not written to MLflow while its tracking server does not answer"
    )
    back = "study 's': tracking server http://127.0.0.1:1 answers again"
    assert _said(caplog) == [
        (logging.WARNING, f"{not_written} ({DOWN})"),
        (logging.INFO, f"{not_written} ({DOWN})"),
        (logging.WARNING, f"{not_written} ({DOWN})"),
        (logging.WARNING, back),
        (logging.INFO, back),
    ]
    owed = outage_of(study)
    assert owed is not None and owed["reason"] == DOWN, "its records are owed until a catch-up writes them"


def test_a_close_that_finds_the_server_back_says_so_when_no_process_did(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=url)
    notice = OutageNotice(study, url, "run-1", "http://127.0.0.1:1")
    with caplog.at_level(logging.INFO, logger="autotweak"):
        notice.answered()  # no outage: nothing to say
        notice(DOWN)
        caplog.clear()
        notice.answered()
    assert _said(caplog) == [(logging.WARNING, "study 's': tracking server http://127.0.0.1:1 answers again")]
