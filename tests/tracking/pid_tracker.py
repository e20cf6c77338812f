"""A tracker that answers with the id of the process it runs in (for the helper-process tests)."""

from __future__ import annotations

import os
import time
from pathlib import Path

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


class NotingTracker(PidTracker):
    """A :class:`PidTracker` that notes in the file ``notes`` each trial it ends, and its close.

    Args:
        notes: The file the notes are appended to, one a line.
        build_s: Seconds it takes to build (as a tracker that imports MLflow).
        write_s: Seconds each ``end_trial`` takes before it is noted.
    """

    def __init__(self, notes: str, build_s: float = 0.0, write_s: float = 0.0) -> None:
        time.sleep(build_s)
        self._notes = Path(notes)
        self._write_s = write_s

    def end_trial(self, record: TrialRecord) -> None:
        time.sleep(self._write_s)
        self._note(f"end_trial {record.number}")

    def close(self) -> None:
        self._note("close")

    def _note(self, line: str) -> None:
        with self._notes.open("a") as out:
            out.write(line + "\n")
