"""Watching a study from the storage, for the live view and progress log lines."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import optuna
from optuna.trial import FrozenTrial, TrialState

from autotweak.engine._study import ATTR, state_of
from autotweak.engine._summary import search_trials, study_compute
from autotweak.engine._unreachable import retrying
from autotweak.spec import Experiment

__all__ = ["PROGRESS_STATES", "Monitor", "Progress"]

_log = logging.getLogger(__name__)

# What a snapshot counts: "queued again" is the interrupted and preempted trials, stopped
# through no fault of their own and run again (``state_of`` names them).
PROGRESS_STATES = ("complete", "pruned", "failed", "queued again", "running")


@dataclass(frozen=True)
class Progress:
    """A snapshot of a running study."""

    counts: dict[str, int]
    done: int
    total: int | None
    best_value: float | None
    best_number: int | None
    elapsed: float
    eta: float | None
    compute: float
    last_finished: list[FrozenTrial]
    done_after: dict[int, int] = field(default_factory=dict)
    """For each trial of ``last_finished``, the budget count once it had finished."""
    best_after: dict[int, tuple[float, int] | None] = field(default_factory=dict)
    """For each trial of ``last_finished``, the best value and trial once it had finished."""


class Monitor:
    """Polls the storage in a thread and calls ``callback`` with a :class:`Progress`."""

    def __init__(
        self,
        study: optuna.Study,
        experiment: Experiment,
        callback: Callable[[Progress], None],
        *,
        interval: float = 1.0,
    ) -> None:
        self.study = study
        self.experiment = experiment
        self.callback = callback
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="autotweak-monitor", daemon=True)
        self._started = time.time()
        self._seen: set[int] = set()
        self._done_at_start: int | None = None
        self._compute_at_start: float | None = None
        self._first_start: float | None = None

    def __enter__(self) -> Monitor:
        # The trials finished before this run (a resumed study) are neither news nor a sign of
        # this run's pace; taken now, not at the first poll, after which the first trials may be done.
        trials = self._read()
        self._seen = {t.number for t in trials if t.state.is_finished()}
        self._done_at_start = _counted(trials)
        self._compute_at_start = study_compute(trials, self.experiment.metric.steps)
        try:
            self._report(trials)  # the study is open: a first look at once, news-free
        except Exception:  # the view must never take the study down
            _log.debug("first progress report failed", exc_info=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.poll()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._report(self._read(stop=self._stop))
            except Exception:  # the view must never take the study down
                _log.debug("progress poll failed", exc_info=True)

    def poll(self) -> Progress:
        """Read the storage once (waiting through a short outage, as workers do) and report."""
        return self._report(self._read())

    def _read(self, stop: threading.Event | None = None) -> list[FrozenTrial]:
        """The search's trials (not ``report --ablate``'s); ``stop`` ends waiting for the storage early."""
        return retrying(
            lambda: search_trials(self.study.get_trials(deepcopy=False)),
            "reading the study's progress",
            store=self.study._storage,
            stop=stop,
        )

    def _report(self, trials: list[FrozenTrial]) -> Progress:
        progress = self._snapshot(trials)
        self.callback(progress)
        return progress

    def _snapshot(self, trials: list[FrozenTrial]) -> Progress:
        counts = Counter(state_of(t) for t in trials)
        counts["queued again"] = counts["interrupted"] + counts["preempted"]  # stopped, not failed
        finished = [t for t in trials if t.state.is_finished()]
        fresh = sorted((t for t in finished if t.number not in self._seen), key=lambda t: t.number)
        self._seen.update(t.number for t in fresh)
        done = _counted(trials)
        compute = study_compute(trials, self.experiment.metric.steps)
        if self._done_at_start is None:
            self._done_at_start = done  # polled without entering: every finished trial is new
            self._compute_at_start = compute
        total = self.experiment.budget.trials
        done_after = self._count_each(fresh, trials, done, total)
        now = time.time()
        self._note_first_start(fresh, now)
        maximize = self.experiment.metric.direction == "maximize"
        best = _best(finished, maximize)
        return Progress(
            counts={s: counts.get(s, 0) for s in PROGRESS_STATES},
            done=min(done, total) if total else done,
            total=total,
            best_value=None if best is None else best.value,
            best_number=None if best is None else best.number,
            elapsed=now - self._started,
            eta=self._eta(done, total, compute, now),
            compute=compute,
            last_finished=fresh,
            done_after=done_after,
            best_after=self._best_each(fresh, finished, maximize),
        )

    @staticmethod
    def _count_each(
        fresh: list[FrozenTrial], trials: list[FrozenTrial], done: int, total: int | None
    ) -> dict[int, int]:
        """The budget count after each new trial, in order: one more after each that counts.

        Counted back from ``done``, so that the last line shows the study's count, and a
        trial queued to run again shows the count it left unchanged.
        """
        rerun = _rerun(trials)
        count = done
        after: dict[int, int] = {}
        for trial in reversed(fresh):
            after[trial.number] = min(count, total) if total else count
            count -= _counts(trial, rerun)
        return dict(reversed(after.items()))

    @staticmethod
    def _best_each(
        fresh: list[FrozenTrial], finished: list[FrozenTrial], maximize: bool
    ) -> dict[int, tuple[float, int] | None]:
        """The best after each new trial, in order: no line names a trial printed after it."""
        numbers = {t.number for t in fresh}
        best = _best([t for t in finished if t.number not in numbers], maximize)
        after: dict[int, tuple[float, int] | None] = {}
        for trial in fresh:
            best = _best([*([best] if best else []), trial], maximize)  # a tie keeps the earlier
            value = None if best is None else best.value
            after[trial.number] = None if best is None or value is None else (value, best.number)
        return after

    def _note_first_start(self, fresh: list[FrozenTrial], now: float) -> None:
        """Keep when the first trial this run finished began: the pace is measured from there.

        Worker start-up is no trial's pace (it made a 500-trial study of 76 s show 34
        minutes after its first trial). A trial begun before this run (a stale one swept
        now) counts from the run's start; a worker's clock ahead of ours, from now.
        """
        starts = [t.datetime_start.timestamp() for t in fresh if t.datetime_start is not None]
        if not starts:
            return
        first = min(max(min(starts), self._started), now)
        self._first_start = first if self._first_start is None else min(self._first_start, first)

    def _eta(self, done: int, total: int | None, compute: float, now: float) -> float | None:
        """The soonest of the budget's limits at this run's pace: trials, compute, wall time.

        Unknown (``None``) while a trial or compute limit has no pace yet: the wall time left
        is then a bound, not an estimate (a one-minute study under ``wall_time: 15m`` would
        show 15 minutes until its first trial ends).
        """
        budget = self.experiment.budget
        paced: list[float] = []
        span = None if self._first_start is None else now - self._first_start
        if span is not None and span > 0:
            new = done - (self._done_at_start or 0)
            if total is not None and new > 0:
                paced.append(max(total - done, 0) * span / new)
            spent = compute - (self._compute_at_start or 0.0)
            if budget.compute is not None and spent > 0:
                paced.append(max(budget.compute - compute, 0.0) * span / spent)
        if not paced and (total is not None or budget.compute is not None):
            return None
        wall = [] if budget.wall_time is None else [max(budget.wall_time - (now - self._started), 0.0)]
        return min(paced + wall, default=None)


def _best(trials: list[FrozenTrial], maximize: bool) -> FrozenTrial | None:
    """The first complete trial of the best value, or None."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not complete:
        return None
    sign = 1 if maximize else -1
    return max(complete, key=lambda t: sign * float(t.value))  # type: ignore[arg-type]


def _counted(trials: list[FrozenTrial]) -> int:
    """Finished trials that count against the budget.

    A trial queued to run again (interrupted, preempted, lost) counts once, when its last
    attempt ends: the attempts before do not count, the one that ends the trial does.
    """
    rerun = _rerun(trials)
    return sum(_counts(t, rerun) for t in trials)


def _rerun(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of the trials queued to run again."""
    return {int(t.user_attrs[ATTR.RETRY_OF]) for t in trials if ATTR.RETRY_OF in t.user_attrs}


def _counts(trial: FrozenTrial, rerun: set[int]) -> int:
    """1 if ``trial`` ended an attempt that counts.

    An interrupted one is always queued again, and a lost, dead worker's or preempted trial
    marked to run again is queued just after it fails: their retries count, from the moment
    they fail (counted until their retry was queued, they made the count step back). The
    mark counts on a failed trial only: a stale-trial sweep marks a trial that it then finds
    finished by its worker (frozen a while, not dead), which is not run again.
    """
    if not trial.state.is_finished() or trial.number in rerun:
        return 0
    runs_again = trial.state == TrialState.FAIL and trial.user_attrs.get(ATTR.RUNS_AGAIN)
    return 0 if trial.user_attrs.get(ATTR.INTERRUPTED) or runs_again else 1
