"""The ask lock lets one process at a time check the budget and ask, on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autotweak.engine._budget import ask_lock
from autotweak.testing.services import postgres


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with postgres() as server:
        server.create_database("locks")
        yield server.url("locks")


def _hold(url: str, study: str, log: str, times: int) -> None:
    for _ in range(times):
        with ask_lock(url, study):
            with open(log, "a") as out:
                out.write(f"in {os.getpid()}\n")
            time.sleep(0.02)
            with open(log, "a") as out:
                out.write(f"out {os.getpid()}\n")


def _log_of_three_processes(url: str, log: Path) -> list[str]:
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_hold, args=(url, "study", str(log), 5)) for _ in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    return log.read_text().splitlines()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_no_two_processes_hold_it_at_once(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}" if kind == "sqlite" else request.getfixturevalue("pg_url")
    log = _log_of_three_processes(url, tmp_path / "log")
    assert len(log) == 30
    # every "in" is followed by the same process's "out": no two sections overlap
    for enter, leave in zip(log[0::2], log[1::2], strict=True):
        assert enter.startswith("in ") and leave == "out " + enter.removeprefix("in ")
