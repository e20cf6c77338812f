"""The record writer: in order, off the caller's thread, failures logged, nothing left behind."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from autotweak.engine._writer import RecordWriter


def test_writes_run_in_order_on_another_thread_and_close_waits_for_them():
    done: list[int] = []
    threads: set[str] = set()

    def write(i: int) -> None:
        time.sleep(0.01)
        threads.add(threading.current_thread().name)
        done.append(i)

    writer = RecordWriter(limit=3)
    for i in range(10):
        writer.submit(lambda i=i: write(i), f"write {i}")
    writer.close()
    assert done == list(range(10))
    assert threading.current_thread().name not in threads
    assert len(threads) == 1


def test_submit_waits_when_the_limit_is_reached():
    release = threading.Event()
    writer = RecordWriter(limit=1)
    writer.submit(release.wait, "a blocked write")
    waiter = threading.Thread(target=writer.submit, args=(lambda: None, "the next write"))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive(), "the second write must wait for the first"
    release.set()
    waiter.join(5)
    assert not waiter.is_alive()
    writer.close()


def test_a_failed_write_is_logged_and_the_next_ones_still_run(caplog: pytest.LogCaptureFixture):
    done: list[str] = []

    def fail() -> None:
        raise ConnectionError("tracking server gone")

    with caplog.at_level(logging.WARNING, logger="autotweak"), RecordWriter() as writer:
        writer.submit(fail, "the record of trial 3")
        writer.submit(lambda: done.append("after"), "the record of trial 4")
    assert done == ["after"]
    [record] = [r for r in caplog.records if "trial 3" in r.getMessage()]
    assert "closed from Optuna's record" in record.getMessage()
    assert "tracking server gone" in (record.exc_text or "")
