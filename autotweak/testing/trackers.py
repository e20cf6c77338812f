"""The conformance suite every tracker passes.

Subclass it and provide a ``tracker`` fixture returning a fresh tracker.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from autotweak.tracking import RECONCILED_TAG, BaseTracker, StudyInfo, StudySummary, TrialRecord, TrialStart

__all__ = ["TrackerConformance"]

_SPEC = {
    "name": "conformance",
    "objective": "pkg.mod:fn",
    "base": {"epochs": 3},
    "tweaks": {"name": "", "params": {"x": {"type": "float", "low": 0.0, "high": 1.0}}},
    "metric": {"name": "loss", "direction": "minimize", "steps": 3},
    "budget": {"trials": 3},
    "sampler": {"name": "random", "args": {}},
    "pruner": {"name": "none", "args": {}},
    "seed": 0,
}


def _start(number: int, run_id: str | None) -> TrialStart:
    return TrialStart(
        study_name="conformance",
        study_run_id=run_id,
        number=number,
        trial_id=number + 1,
        config={"x": 0.5, "epochs": 3},
        params={"x": 0.5},
        attempt=1,
        retry_of=None,
        seed=0,
        provenance={"autotweak.host": "h", "autotweak.pid": "1"},
    )


def _record(run_id: str, number: int, state: str) -> TrialRecord:
    return TrialRecord(
        run_id=run_id,
        number=number,
        state=state,  # type: ignore[arg-type]
        metric="loss",
        value=None if state == "failed" else 0.25,
        steps=[(1, 0.5, 0), (2, 0.3, 0)],
        duration=0.1,
        compute=1.0,
        failure="boom" if state == "failed" else None,
        traceback="Traceback ..." if state == "failed" else None,
    )


class TrackerConformance:
    """What every tracker must accept: a study's whole life, every trial state."""

    @pytest.fixture
    def tracker(self) -> BaseTracker:
        raise NotImplementedError("provide a 'tracker' fixture")

    def _open(self, tracker: BaseTracker) -> str | None:
        info = StudyInfo(
            study_name="conformance", spec=_SPEC, meta={"sampler": {"name": "random"}}, storage="sqlite://"
        )
        return tracker.start_study(info)

    def test_meta_names_the_tracker(self, tracker: BaseTracker) -> None:
        assert isinstance(tracker.meta.get("name"), str)

    def test_trial_ids_are_distinct_strings(self, tracker: BaseTracker) -> None:
        study = self._open(tracker)
        ids = [tracker.start_trial(_start(n, study)) for n in range(3)]
        assert all(isinstance(i, str) and i for i in ids)
        assert len(set(ids)) == 3

    def test_recorded_trials_lists_open_and_closed_records_or_none(self, tracker: BaseTracker) -> None:
        study = self._open(tracker)
        assert tracker.recorded_trials("conformance") in (None, set())
        closed = tracker.start_trial(_start(0, study))
        tracker.end_trial(_record(closed, 0, "complete"))
        tracker.start_trial(_start(1, study))
        recorded = tracker.recorded_trials("conformance")
        assert recorded is None or recorded == {1, 2}  # Optuna trial ids, not numbers

    @pytest.mark.parametrize("state", ["complete", "pruned", "failed"])
    def test_a_record_is_said_closed_once_closed_and_only_then(
        self, tracker: BaseTracker, state: str
    ) -> None:
        study = self._open(tracker)
        run_id = tracker.start_trial(_start(0, study))
        assert not tracker.closed(run_id)
        tracker.end_trial(_record(run_id, 0, state))
        if type(tracker).closed is not BaseTracker.closed:  # one that can tell
            assert tracker.closed(run_id)

    @pytest.mark.parametrize("state", ["complete", "pruned", "failed"])
    def test_every_state_is_accepted(self, tracker: BaseTracker, state: str) -> None:
        study = self._open(tracker)
        run_id = tracker.start_trial(_start(0, study))
        tracker.log_steps(run_id, "loss", [(1, 0.9, 0)])
        tracker.end_trial(_record(run_id, 0, state))

    @pytest.mark.parametrize("guard", [None, {"tau": -0.2, "results": 6}])
    def test_proposals_and_the_guard_verdict_are_accepted(
        self, tracker: BaseTracker, guard: dict[str, float] | None
    ) -> None:
        study = self._open(tracker)
        run_id = tracker.start_trial(_start(0, study))
        tracker.end_trial(_record(run_id, 0, "complete"))
        if study is not None:
            proposal = {"number": 0, "params": {"x": 0.5}, "value": 0.25, "rank": 1}
            tracker.log_proposals(study, [proposal], guard)
            tracker.log_proposals(study, [], None)
        summary = StudySummary("conformance", {"complete": 1}, 0, 0.25, {"x": 0.5}, None, 0.1)
        tracker.end_study(study, summary)

    def test_sessions_write_their_own_lines_on_the_study_record(self, tracker: BaseTracker) -> None:
        """A session's line as it starts, then as it ends; another session's at once, its own entry."""
        study = self._open(tracker)
        if study is None:
            return
        tracker.log_session(study, "s1", "first run on inline (workers=1), host h")
        tracker.log_session(study, "w1", "joined worker on inline (workers=1), host g")
        tracker.log_session(study, "s1", "first run on inline (workers=1), host h: 3 trial(s) finished")
        summary = StudySummary("conformance", {"complete": 3}, 0, 0.25, {"x": 0.5}, None, 3.0)
        tracker.end_study(study, summary)

    def test_a_model_is_kept_with_its_record_or_refused_for_every_call(
        self, tracker: BaseTracker, tmp_path: Path
    ) -> None:
        """``Trial.log_model`` hands over a file or a folder: kept (an address) or refused (``None``)."""
        study = self._open(tracker)
        run_id = tracker.start_trial(_start(0, study))
        (tmp_path / "model.pt").write_text("weights")
        (tmp_path / "model").mkdir()
        (tmp_path / "model" / "config.json").write_text("{}")
        kept = [
            tracker.log_model(run_id, tmp_path / "model.pt"),
            tracker.log_model(run_id, tmp_path / "model"),
        ]
        assert kept == [None, None] or (isinstance(kept[0], str) and kept[0] and kept[0] == kept[1])
        tracker.end_trial(_record(run_id, 0, "complete"))

    def test_a_checkpoint_is_kept_whole_and_fetched_again_or_never_said_kept(
        self, tracker: BaseTracker, tmp_path: Path
    ) -> None:
        """A record says it holds a checkpoint only once one was kept: a retry may resume from it."""
        study = self._open(tracker)
        run_id = tracker.start_trial(_start(0, study))
        assert not tracker.checkpoint_kept(run_id)
        (tmp_path / "kept").mkdir()
        (tmp_path / "kept" / "step.txt").write_text("2")
        tracker.upload_checkpoint(run_id, tmp_path / "kept")
        fetched = tracker.download_checkpoint(run_id, tmp_path / "fetched")
        assert tracker.checkpoint_kept(run_id) == fetched
        if fetched:
            assert (tmp_path / "fetched" / "step.txt").read_text() == "2"
        tracker.end_trial(_record(run_id, 0, "preempted"))

    def test_a_late_opening_of_a_trial_another_opened_keeps_one_record(self, tracker: BaseTracker) -> None:
        """Two openings of one trial (a catch-up elsewhere, then the late one): one record, still writable."""
        study = self._open(tracker)
        first = tracker.start_trial(_start(0, study))
        late = tracker.start_trial(_start(0, study))
        kept = tracker.one_record("conformance", 1, late)
        recorded = tracker.recorded_trials("conformance")
        if recorded is not None:  # a tracker that knows its records keeps the other's, and drops the late one
            assert kept == first and recorded == {1}
        tracker.end_trial(_record(kept, 0, "complete"))

    def test_a_catch_ups_opening_and_its_workers_agree_on_the_one_record_whichever_looks(
        self, tracker: BaseTracker
    ) -> None:
        """A catch-up elsewhere opened the trial's record first; each opening looks once it has landed."""
        study = self._open(tracker)
        catch_up = tracker.start_trial(dataclasses.replace(_start(0, study), tags={RECONCILED_TAG: "true"}))
        worker = tracker.start_trial(_start(0, study))
        kept = tracker.one_record("conformance", 1, catch_up)
        assert tracker.one_record("conformance", 1, worker) == kept
        if tracker.recorded_trials("conformance") is not None:  # a tracker that knows its records
            assert kept == worker, "the worker's opening is kept: it holds its host and code version"
        tracker.end_trial(_record(kept, 0, "complete"))

    def test_a_study_whose_making_was_cut_short_is_dropped_and_made_again(
        self, tracker: BaseTracker, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Its record goes with it: the same study made again finds no record left open to close."""
        dropped = self._open(tracker)
        if dropped is None:
            return
        tracker.drop_study(dropped)
        with caplog.at_level(logging.WARNING, logger="autotweak"):
            again = self._open(tracker)
        assert again is not None and again != dropped
        assert not [r for r in caplog.records if r.name.startswith("autotweak")], caplog.text
        tracker.end_study(again, StudySummary("conformance", {}, None, None, {}, None, 0.0))

    def test_a_dead_trial_can_be_closed_and_the_study_reopened(self, tracker: BaseTracker) -> None:
        study = self._open(tracker)
        run_id = tracker.start_trial(_start(0, study))
        tracker.mark_failed(run_id, "worker lost")
        summary = StudySummary("conformance", {"failed": 1}, None, None, {}, None, 0.0)
        tracker.end_study(study, summary)
        info = StudyInfo(study_name="conformance", spec=_SPEC, meta={}, storage="sqlite://")
        assert tracker.start_study(info, run_id=study) == study
        tracker.end_study(study, summary)
