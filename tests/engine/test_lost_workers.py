"""Workers lost without a word (a machine gone, a frozen worker): the stale-trial sweep fails their trials.

What the progress count (``done k/N``) says around that sweep, and what runs again.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

import autotweak
import autotweak.engine._worker
from autotweak._locations import resolve_storage_url
from autotweak._quiet import quiet_optuna
from autotweak.engine._budget import ask_lock
from autotweak.engine._lost_retries import queue_lost_retries, queue_marked_retries
from autotweak.engine._reconcile import lost_trial_start
from autotweak.engine._stale import LOST_WORKER, _fail_lost, fail_stale
from autotweak.engine._storage import make_storage
from autotweak.engine._study import ATTR, create_study, state_of
from autotweak.engine._worker import WorkerContext, make_stale_handler, run_worker
from autotweak.testing.services import Postgres
from autotweak.tracking import MlflowTracker, NullTracker
from tests.engine.counts import count_around_requeue, done
from tests.helpers import drop_studies, load, mlflow_runs

LOST = {"workers": 1, "heartbeat_interval": 1, "grace_period": 2, "max_retries": 1}


@pytest.fixture
def pg_url(pg: Postgres) -> Iterator[str]:
    """The Optuna database; the studies a test made there are deleted after it."""
    url = pg.url("optuna")
    yield url
    drop_studies(pg, url)


lock_free = contextlib.nullcontext


def _lose(study: optuna.Study, attempt: int) -> int:
    """A trial whose worker beat once and was lost (``attempt``: its attempt); its number."""
    with quiet_optuna():
        trial = study.ask({"x": optuna.distributions.FloatDistribution(-5.0, 5.0)})
    if attempt > 1:
        trial.set_user_attr(ATTR.ATTEMPT, attempt)
    study._storage.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]
    return trial.number


@pytest.mark.timeout(120)
def test_the_progress_count_never_steps_back_as_a_lost_workers_trial_runs_again(
    home, make_experiment, monkeypatch
):
    """Read between the sweep failing a lost worker's trial and its retry being queued, the count holds.

    The sweep fails the trial, then its callback closes its record and queues its retry: a
    count read in between counted the failed trial, then one less once its retry stood in.
    A trial on its last attempt is not run again: it counts from the moment it fails.
    """
    autotweak.optimize(make_experiment(name="lost", budget={"trials": 2}, execution=LOST))
    exp = make_experiment(name="lost", budget={"trials": 10}, execution=LOST)  # a resume's larger budget
    storage = make_storage(resolve_storage_url(exp.storage), heartbeat_interval=1, grace_period=2)
    study = optuna.load_study(study_name="lost", storage=storage)
    again, last = _lose(study, attempt=1), _lose(study, attempt=2)  # max_retries 1: the second's last
    time.sleep(3.5)  # past the grace period (SQLite keeps heartbeats to the second)
    around = count_around_requeue(monkeypatch, autotweak.engine._worker, exp)
    autotweak.Study(exp, resume=True).close()  # its opening sweeps the stale trials
    assert len(around) == 2, "both lost trials went through the sweep's callback"
    assert all(before <= after for before, after in around), around
    trials = load(exp).trials
    assert [state_of(trials[n]) for n in (again, last)] == ["failed", "failed"]
    assert trials[again].user_attrs[ATTR.FAILURE] == LOST_WORKER
    assert trials[again].user_attrs.get(ATTR.RUNS_AGAIN) is True, "marked as it failed"
    assert ATTR.RUNS_AGAIN not in trials[last].user_attrs, "its retries are spent: it counts"
    retries = [(t.user_attrs[ATTR.RETRY_OF], t.state) for t in trials if ATTR.RETRY_OF in t.user_attrs]
    assert retries == [(again, TrialState.WAITING)]
    assert done(load(exp), exp) == 3, "the two run before, and the lost one that does not run again"


def test_a_trial_its_frozen_worker_finishes_as_the_sweep_fails_it_counts_once_and_does_not_run_again(
    home, make_experiment, monkeypatch
):
    """A worker frozen past the grace period (SIGSTOP, a VM paused) wakes and tells its trial just then.

    The sweep marked the trial to run again before failing it, and found it complete: the
    mark does not take it out of the count, nor queue a retry of a trial that completed.
    """
    url = f"sqlite:///{home / 'optuna.db'}"
    exp = make_experiment(name="frozen", storage=url, execution=LOST)
    storage = make_storage(
        url, heartbeat_interval=1, grace_period=2, on_stale=make_stale_handler(NullTracker(), exp)
    )
    study = create_study(exp, storage)
    with quiet_optuna():
        trial = study.ask()  # the baseline
    storage.record_heartbeat(trial._trial_id)
    time.sleep(3.5)  # past the grace period
    store = study._storage
    write_state = store.set_trial_state_values

    def woken_meanwhile(trial_id: int, state: TrialState, values: Any = None) -> bool:
        if (
            state == TrialState.FAIL
        ):  # the sweep's write, after its marks: the worker wakes and tells it first
            with quiet_optuna():
                study.tell(trial, 0.5)
        return write_state(trial_id, state, values)

    monkeypatch.setattr(store, "set_trial_state_values", woken_meanwhile)
    fail_stale(study)
    finished: FrozenTrial = study.trials[0]
    assert finished.state == TrialState.COMPLETE
    assert finished.user_attrs.get(ATTR.RUNS_AGAIN) is True, "marked before the sweep found it finished"
    assert done(study, exp) == 1, "it counts: it completed"
    assert queue_lost_retries(study, NullTracker(), settle=0.0, max_retries=1) == 0
    assert len(study.trials) == 1, "a completed trial is not run again"


@pytest.mark.parametrize("told", ["complete", "failed"])
def test_a_trial_the_sweep_failed_while_its_frozen_worker_slept_is_recorded_with_the_sweeps_reason(
    home, make_experiment, mlflow_client, told
):
    """The worker wakes after the sweep failed its trial and tells it: the record says what Optuna says.

    Told complete, the record said "finished after it was declared stale"; told failed, it said
    the error the worker's objective met (its report raised, the trial being finished).
    Optuna and the report said the sweep's reason.
    """
    exp = make_experiment(name="woken", budget={"trials": 1})
    with autotweak.Study(exp) as study:
        trial = study.ask()
        assert trial is not None
        _fail_lost(study.optuna_study._storage, trial.optuna_trial._trial_id, None)  # the sweep, meanwhile
        if told == "complete":
            study.tell(trial, 1.0)
        else:
            study.tell(trial, state="failed", error="UpdateFinishedTrialError: Trial#0 has already finished")
    (stored,) = load(exp).trials
    assert (state_of(stored), stored.user_attrs[ATTR.FAILURE]) == ("failed", LOST_WORKER)
    (run,) = mlflow_runs(mlflow_client, "woken").children.values()
    assert (run.info.status, run.data.tags["autotweak.state"]) == ("FAILED", "failed")
    assert run.data.tags["autotweak.failure"] == LOST_WORKER


def _killed_in_its_sweep(exp: Any, url: str, attempt: int = 1) -> tuple[optuna.Study, int]:
    """A study whose lost trial a sweeper failed, marked to run again, and was killed before queueing it."""
    storage = make_storage(url, heartbeat_interval=1, grace_period=2)
    study = create_study(exp, storage)
    lost = _lose(study, attempt=attempt)
    trial_id = study.trials[lost]._trial_id
    storage.set_trial_user_attr(trial_id, ATTR.FAILURE, LOST_WORKER)
    storage.set_trial_user_attr(trial_id, ATTR.RUNS_AGAIN, True)
    storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
    time.sleep(2.5)  # past the grace period, in which its sweeper would have queued it
    return study, lost


def test_a_marked_trial_whose_sweeper_was_killed_before_queueing_it_runs_again_in_a_live_workers_sweep(
    home, make_experiment
):
    """With no opening or close to come, a worker's periodic sweep queues the retry: not left for a resume.

    The killed sweeper's trial was failed and marked to run again; a worker asking for the
    study's last trial ran a new config in its place (done 2/2 with the lost one never run).
    """
    url = f"sqlite:///{home / 'optuna.db'}"
    exp = make_experiment(name="unqueued", storage=url, budget={"trials": 2}, execution=LOST)
    _, lost = _killed_in_its_sweep(exp, url)
    ctx = WorkerContext(experiment=exp, storage_url=url, tracking_uri=None, study_run_id=None, home=str(home))
    run_worker(ctx)
    retries = [t for t in load(exp).trials if t.user_attrs.get(ATTR.RETRY_OF) == lost]
    assert [t.state for t in retries] == [TrialState.COMPLETE], "run again once, by the worker"
    assert done(load(exp), exp) == 2


def test_workers_sweeping_at_once_queue_one_retry_of_a_marked_trial(home, make_experiment, pg_url):
    """Each looks again under the ask lock: the second finds the first's retry."""
    exp = make_experiment(name="unqueued-pg", storage=pg_url, execution=LOST)
    study, lost = _killed_in_its_sweep(exp, pg_url)
    barrier = threading.Barrier(2)

    def sweep() -> int:
        barrier.wait()
        lock = functools.partial(ask_lock, pg_url, exp.name)
        return queue_marked_retries(study, NullTracker(), settle=2.0, max_retries=1, lock=lock, metric="loss")

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        queued = sorted(pool.map(lambda _: sweep(), range(2)))
    assert queued == [0, 1]
    retries = [t for t in study.get_trials() if t.user_attrs.get(ATTR.RETRY_OF) == lost]
    assert [t.state for t in retries] == [TrialState.WAITING]
    assert (
        queue_marked_retries(study, NullTracker(), settle=2.0, max_retries=1, lock=lock_free, metric="loss")
        == 0
    )


def test_a_marked_trial_a_later_session_refuses_is_said_once_and_its_sweeps_take_no_lock(
    home, make_experiment, caplog
):
    """Marked by a session with more retries; this one (max_retries 1) does not run its third attempt.

    Each sweep (one per heartbeat interval) took the ask lock and said "not run again" for
    the rest of the session: three sweeps, three lock acquisitions and three warnings.
    """
    url = f"sqlite:///{home / 'optuna.db'}"
    exp = make_experiment(name="refused", storage=url, execution=LOST)
    study, lost = _killed_in_its_sweep(exp, url, attempt=2)
    locks: list[int] = []

    @contextlib.contextmanager
    def counted() -> Iterator[None]:
        locks.append(1)
        yield

    sweep = functools.partial(
        queue_marked_retries, study, NullTracker(), settle=2.0, max_retries=1, lock=counted, metric="loss"
    )
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        swept = [sweep() for _ in range(3)]
        closing = queue_lost_retries(study, NullTracker(), settle=0.0, max_retries=1)  # as a close does
    said = [r.getMessage() for r in caplog.records if "not run again" in r.getMessage()]
    assert swept == [0, 0, 0] and closing == 0 and len(study.trials) == 1, "no retry: its retries are spent"
    assert said == [f"trial {lost} did not finish 2 times; not run again"], "said once in this process"
    assert len(locks) == 1, f"the ask lock taken {len(locks)} times in 3 sweeps"
    assert sweep(max_retries=2) == 1, "a session of this process with more retries runs it again"


@pytest.mark.parametrize("closed_before", [False, True])
def test_the_sweep_that_queues_a_marked_trials_retry_closes_the_record_its_killed_sweeper_left_open(
    home, make_experiment, mlflow_client, closed_before
):
    """Failed with the trial's reason, as the stale-trial callback does; one closed before is left as it was.

    It stayed "running" until a later opening or close caught it up, beside its running retry.
    """
    url = f"sqlite:///{home / 'optuna.db'}"
    exp = make_experiment(name="left-open", storage=url, execution=LOST)
    study, lost = _killed_in_its_sweep(exp, url)
    tracker = MlflowTracker(f"sqlite:///{home / 'mlflow.db'}")
    run_id = tracker.start_trial(
        lost_trial_start(study, study.trials[lost])
    )  # its worker's, before it was lost
    if closed_before:  # the killed sweeper closed it before it was killed
        tracker.mark_failed(run_id, "closed by the sweeper before it was killed")
    ended = mlflow_client.get_run(run_id).info.end_time
    queued = queue_marked_retries(study, tracker, settle=2.0, max_retries=1, lock=lock_free, metric="loss")
    assert queued == 1
    runs = mlflow_runs(mlflow_client, "left-open")
    assert list(runs.children) == [lost] and not runs.duplicates, "no second record"
    run = runs.children[lost]
    assert (run.info.status, run.data.tags["autotweak.state"]) == ("FAILED", "failed")
    if closed_before:
        assert run.data.tags["autotweak.failure"] == "closed by the sweeper before it was killed"
        assert run.info.end_time == ended, "not written again"
    else:
        assert run.data.tags["autotweak.failure"] == LOST_WORKER
