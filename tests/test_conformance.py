"""Every executor and tracker that ships passes its seam's conformance suite."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from autotweak.engine import BaseExecutor, InlineExecutor, ProcessExecutor
from autotweak.testing import ExecutorConformance, TrackerConformance
from autotweak.tracking import BaseTracker, MlflowTracker, NullTracker, OffloadingTracker


class TestExecutors(ExecutorConformance):
    @pytest.fixture(params=[InlineExecutor, lambda: ProcessExecutor(2)], ids=["inline", "processes"])
    def executor(self, request: pytest.FixtureRequest) -> BaseExecutor:
        executor: BaseExecutor = request.param()
        return executor


class TestTrackers(TrackerConformance):
    @pytest.fixture(params=["null", "mlflow", "offloaded"])
    def tracker(self, request: pytest.FixtureRequest, home: Path) -> Iterator[BaseTracker]:
        uri = f"sqlite:///{home / 'mlflow.db'}"
        if request.param == "null":
            yield NullTracker()
        elif request.param == "mlflow":
            yield MlflowTracker(uri)
        else:  # trial records written by the helper process
            offloaded = OffloadingTracker(
                MlflowTracker(uri), functools.partial(MlflowTracker, uri), mode="on"
            )
            assert offloaded.process is not None and offloaded.process.ready(timeout=60)
            yield offloaded
            offloaded.close()
