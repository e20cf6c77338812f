"""Every executor and tracker that ships passes its seam's conformance suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from autotweak.engine import BaseExecutor, InlineExecutor, ProcessExecutor
from autotweak.testing import ExecutorConformance, TrackerConformance
from autotweak.tracking import BaseTracker, MlflowTracker, NullTracker


class TestExecutors(ExecutorConformance):
    @pytest.fixture(params=[InlineExecutor, lambda: ProcessExecutor(2)], ids=["inline", "processes"])
    def executor(self, request: pytest.FixtureRequest) -> BaseExecutor:
        executor: BaseExecutor = request.param()
        return executor


class TestTrackers(TrackerConformance):
    @pytest.fixture(params=["null", "mlflow"])
    def tracker(self, request: pytest.FixtureRequest, home: Path) -> BaseTracker:
        if request.param == "null":
            return NullTracker()
        return MlflowTracker(f"sqlite:///{home / 'mlflow.db'}")
