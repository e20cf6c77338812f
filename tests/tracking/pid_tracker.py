"""A tracker that answers with the id of the process it runs in (for the helper-process tests)."""

from __future__ import annotations

import os

from autotweak.tracking import BaseTracker, StudyInfo, TrialRecord, TrialStart


class PidTracker(BaseTracker):
    """Run ids say which process opened them; a record whose failure is ``"raise"`` raises."""

    def start_study(self, info: StudyInfo, run_id: str | None = None) -> str:
        return f"{os.getpid()}:study"

    def start_trial(self, start: TrialStart) -> str:
        return f"{os.getpid()}:{start.number}"

    def end_trial(self, record: TrialRecord) -> None:
        if record.failure == "raise":
            raise ValueError("asked to fail")
