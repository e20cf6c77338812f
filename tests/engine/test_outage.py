"""A tracking server that stops answering is said once per session, by whichever process finds it first."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest

from autotweak.engine import _lost_records
from autotweak.engine._lost_records import DroppedCount, records_dropped
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


def test_a_close_sums_its_sessions_worker_counts_waiting_for_a_worker_still_closing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes of session run-1, one still closing as the close looks; a killed one is not known."""
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    workers = {
        name: DroppedCount(study, session)
        for name, session in [("a", "run-1"), ("b", "run-1"), ("c", "run-2")]
    }
    for name, worker in workers.items():
        worker._key = f"{worker._key}-{name}"  # another process of the same host
        worker.started()
    workers["a"].ended(2)
    workers["c"].ended(5)  # another session's

    def waited(seconds: float) -> None:  # the close waits: worker b says its count meanwhile
        workers["b"].ended(1)

    monkeypatch.setattr(_lost_records, "time", SimpleNamespace(monotonic=time.monotonic, sleep=waited))
    assert records_dropped(study, "run-1", wait=60.0) == 3
    killed = DroppedCount(study, "run-1")
    killed._key = f"{killed._key}-killed"
    killed.started()
    assert records_dropped(study, "run-1", wait=0.0) is None, "a worker that never said: not known"
    assert records_dropped(study, "run-3", wait=0.0) is None, "no worker kept a count"
