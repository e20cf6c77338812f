"""The progress monitor: counts, best trial and the time left, read from the storage."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from autotweak.engine import _monitor
from autotweak.engine._monitor import Monitor, Progress
from autotweak.engine._retries import requeue
from autotweak.engine._study import ATTR


def _finish(study: optuna.Study, values: list[float]) -> None:
    for value in values:
        study.tell(study.ask(), value)


@pytest.fixture
def study() -> optuna.Study:
    return optuna.create_study(direction="minimize")


_TEN_STEPS = {"name": "loss", "direction": "minimize", "steps": 10}


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    """The monitor's clock, in seconds since the epoch: set ``clock[0]`` to move it."""
    now = [1000.0]
    monkeypatch.setattr(_monitor, "time", SimpleNamespace(time=lambda: now[0]))
    return now


def _add(study: optuna.Study, start: float, end: float, value: float | None = 0.5, steps: int = 0) -> None:
    """A trial that ran from ``start`` to ``end`` (clock seconds); pruned after ``steps`` if no value."""
    state = TrialState.COMPLETE if value is not None else TrialState.PRUNED
    trial = create_trial(state=state, value=value, intermediate_values={s: 0.5 for s in range(1, steps + 1)})
    trial.datetime_start = datetime.fromtimestamp(start)
    trial.datetime_complete = datetime.fromtimestamp(end)
    study.add_trial(trial)


def test_eta_follows_the_pace_of_trials_that_finish_before_the_first_poll(study, make_experiment, clock):
    experiment = make_experiment(budget={"trials": 10, "wall_time": "10m"})
    seen: list[Progress] = []
    with Monitor(study, experiment, seen.append, interval=3600) as monitor:
        for i in range(3):
            _add(study, 1000 + 2 * i, 1002 + 2 * i, value=0.1 * (i + 1))
        clock[0] = 1006
        progress = monitor.poll()
    assert progress.done == 3 and progress.best_value == 0.1 and progress.best_number == 0
    # 7 trials left at the pace of the first 3 (2 s each), not the 10-minute wall-time budget.
    assert progress.eta == pytest.approx(14)


def test_eta_leaves_out_the_workers_start_up(study, make_experiment, clock):
    """100 s of start-up, then a trial a second: 499 s to go, not 499 times 101."""
    experiment = make_experiment(budget={"trials": 500})
    with Monitor(study, experiment, lambda p: None, interval=3600) as monitor:
        _add(study, 1100, 1101)
        clock[0] = 1101
        first = monitor.poll()
        for i in range(1, 10):
            _add(study, 1100 + i, 1101 + i)
        clock[0] = 1110
        tenth = monitor.poll()
    assert first.eta == pytest.approx(499) and tenth.eta == pytest.approx(490)
    assert first.elapsed == pytest.approx(101), "the elapsed time still counts from the start"


def test_eta_by_compute_when_it_runs_out_before_the_trials(study, make_experiment, clock):
    """A compute budget of 10 full trainings, 5.2 spent in this run's 6 s: 4.4 s to go, not 991 trials."""
    experiment = make_experiment(budget={"trials": 1000, "compute": 10}, metric=_TEN_STEPS)
    _add(study, 0, 1, value=0.3)  # an earlier run's full training: spent, but not at this run's pace
    with Monitor(study, experiment, lambda p: None, interval=3600) as monitor:
        for i in range(4):
            _add(study, 1002 + i, 1003 + i)
            _add(study, 1002 + i, 1003 + i, value=None, steps=3)  # pruned at 3 of 10 steps
        clock[0] = 1008
        progress = monitor.poll()
    assert progress.compute == pytest.approx(1 + 4 + 4 * 0.3)
    assert progress.eta == pytest.approx((10 - 6.2) * 6 / 5.2)


def test_eta_by_compute_alone(study, make_experiment, clock):
    experiment = make_experiment(budget={"compute": 4}, metric=_TEN_STEPS)
    with Monitor(study, experiment, lambda p: None, interval=3600) as monitor:
        before = monitor.poll()
        _add(study, 1000, 1001)
        clock[0] = 1001
        after = monitor.poll()
    assert before.eta is None and after.eta == pytest.approx(3)


def test_eta_is_unknown_until_the_first_trial_ends_not_the_wall_time_left(study, make_experiment, clock):
    """The bundled example (40 trials, wall_time 15m) showed 'eta 14m59s' until its first trial ended."""
    experiment = make_experiment(budget={"trials": 40, "wall_time": "15m"})
    with Monitor(study, experiment, lambda p: None, interval=3600) as monitor:
        clock[0] = 1001
        before = monitor.poll()
        _add(study, 1001, 1003)
        clock[0] = 1003
        after = monitor.poll()
    assert before.eta is None and after.eta == pytest.approx(39 * 2)


def test_eta_is_the_wall_time_left_when_it_is_the_only_limit(study, make_experiment, clock):
    experiment = make_experiment(budget={"wall_time": "15m"})
    with Monitor(study, experiment, lambda p: None, interval=3600) as monitor:
        clock[0] = 1060
        progress = monitor.poll()
    assert progress.eta == pytest.approx(840)


def test_trials_of_an_earlier_run_do_not_count_for_the_pace(study, make_experiment):
    _finish(study, [0.1, 0.2])
    experiment = make_experiment(budget={"trials": 10, "wall_time": "10m"})
    with Monitor(study, experiment, lambda p: None, interval=3600) as monitor:
        before = monitor.poll()
        _finish(study, [0.4])
        after = monitor.poll()
    assert before.done == 2 and before.eta is None  # no pace yet: the wall time left is a bound
    assert after.done == 3 and after.eta is not None and after.eta < 60
    assert before.last_finished == [], "trials of an earlier run are not news (resume)"
    assert [t.number for t in after.last_finished] == [2]
    assert after.done_after == {2: 3}


def test_each_new_trial_carries_its_own_count(study, make_experiment):
    experiment = make_experiment(budget={"trials": 6})
    _finish(study, [0.1])  # an earlier run
    with Monitor(study, experiment, lambda p: None, interval=3600) as monitor:
        _finish(study, [0.2, 0.3])
        first = monitor.poll()
        _finish(study, [0.4, 0.5, 0.6, 0.7])  # one more than the budget: the count stops at 6
        second = monitor.poll()
    assert [t.number for t in first.last_finished] == [1, 2]
    assert first.done_after == {1: 2, 2: 3}, "not 3 and 3: each line shows the count after its trial"
    assert second.done_after == {3: 4, 4: 5, 5: 6, 6: 6}


def _interrupt_and_requeue(study: optuna.Study) -> None:
    """What a worker does on Ctrl-C: the trial is marked, failed and queued to run again."""
    trial = study.ask()
    trial.set_user_attr(ATTR.INTERRUPTED, True)
    study.tell(trial, state=TrialState.FAIL)
    requeue(study, trial.number, dict(trial.params), trial.user_attrs, max_retries=3)


def test_interrupted_trials_do_not_count_and_their_retries_count_once(study, make_experiment):
    """After a resume with queued retries, each line shows its own count, one more than the last."""
    experiment = make_experiment(budget={"trials": 4})
    _finish(study, [0.1])
    _interrupt_and_requeue(study)  # trial 1, in an earlier run stopped by Ctrl-C
    with Monitor(study, experiment, lambda p: None, interval=3600) as monitor:
        start = monitor.poll()
        _finish(study, [0.2])  # trial 2: the retry of 1
        first = monitor.poll()
        _interrupt_and_requeue(study)  # trial 3
        during = monitor.poll()
        _finish(study, [0.3, 0.4])  # trial 4, the retry of 3, then a new trial 5
        second = monitor.poll()
    assert start.done == 1, "the interrupted trial does not count, nor its retry before it ends"
    assert [t.number for t in first.last_finished] == [2] and first.done_after == {2: 2}
    assert [t.number for t in during.last_finished] == [3] and during.done_after == {3: 2}
    assert during.done == 2
    assert [t.number for t in second.last_finished] == [4, 5]
    assert second.done_after == {4: 3, 5: 4} and second.done == 4


def test_each_new_trial_carries_the_best_as_of_its_own_line(study, make_experiment):
    """A line names no trial printed after it: the best among the trials up to and including it."""
    experiment = make_experiment(budget={"trials": 10})
    _finish(study, [0.4])  # an earlier run: its best stands until a new trial beats it
    with Monitor(study, experiment, lambda p: None, interval=3600) as monitor:
        pruned = study.ask()
        study.tell(pruned, state=TrialState.PRUNED)
        _finish(study, [0.5, 0.3, 0.9, 0.1])
        progress = monitor.poll()
    assert [t.number for t in progress.last_finished] == [1, 2, 3, 4, 5]
    assert progress.best_after == {1: (0.4, 0), 2: (0.4, 0), 3: (0.3, 3), 4: (0.3, 3), 5: (0.1, 5)}
    assert (progress.best_value, progress.best_number) == (0.1, 5), "the poll's best is the last line's"


def test_no_best_before_the_first_complete_trial(make_experiment):
    metric = {"name": "acc", "direction": "maximize", "steps": 5}
    experiment = make_experiment(budget={"trials": 10}, metric=metric)
    study = optuna.create_study(direction="maximize")
    with Monitor(study, experiment, lambda p: None, interval=3600) as monitor:
        failed = study.ask()
        study.tell(failed, state=TrialState.FAIL)
        _finish(study, [0.2, 0.7, 0.5])
        progress = monitor.poll()
    assert progress.best_after == {0: None, 1: (0.2, 1), 2: (0.7, 2), 3: (0.7, 2)}
