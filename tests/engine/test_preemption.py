"""Spot interruption notices: the trial is preempted, its checkpoint kept, and resumed elsewhere."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Iterator

import optuna
import pytest
from optuna.trial import TrialState

import autotweak
import autotweak.engine._session
from autotweak._locations import resolve_storage_url
from autotweak._quiet import quiet_optuna
from autotweak.engine._crashed import settle_crashed_workers
from autotweak.engine._killed import killed_reason, oom_kills
from autotweak.engine._loop import WorkerResult, _Loop
from autotweak.engine._none_completed import say_if_none_completed
from autotweak.engine._reconcile import lost_trial_start
from autotweak.engine._retries import ask_reclaimable, requeue
from autotweak.engine._session import Outcome, TrialSession, WorkerContext
from autotweak.engine._stale import LOST_MACHINE, LOST_WORKER
from autotweak.engine._storage import make_storage
from autotweak.engine._study import ATTR, create_study, state_of
from autotweak.engine._summary import summarize
from autotweak.report import build_report
from autotweak.tracking import MlflowTracker, NullTracker
from tests.conftest import objective
from tests.engine.counts import count_around_requeue, done
from tests.helpers import load, mlflow_runs
from tests.imds import MetadataService


@pytest.fixture
def metadata(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    with MetadataService() as imds:
        monkeypatch.setenv("AUTOTWEAK_IMDS_ENDPOINT", imds.endpoint)
        monkeypatch.setenv("AUTOTWEAK_IMDS_INTERVAL", "0.1")
        yield imds.notice


def test_notice_preempts_the_trial_which_resumes_from_its_checkpoint_elsewhere(
    home, make_experiment, mlflow_client, metadata
):
    marker = home / "marks.txt"
    exp = make_experiment(
        name="spot",
        objective=objective("checkpointed"),
        base={"marker": str(marker), "sleep": 0.3, "steps": 6},
        metric={"name": "loss", "direction": "minimize", "steps": 6},
        budget={"trials": 2},
    )
    stop = threading.Event()

    def warn_during_trial_0() -> None:  # the two-minute warning, once trial 0 has a checkpoint
        while not stop.is_set():
            if marker.exists() and "start=0" in marker.read_text():
                time.sleep(0.45)  # at 0.3 s per step: steps 1 and 2 done, not the 6th
                metadata.set()
                return
            time.sleep(0.02)

    warner = threading.Thread(target=warn_during_trial_0, daemon=True)
    warner.start()
    first = autotweak.optimize(exp)
    stop.set()
    assert first.stop_reasons == ["preempted"], "a worker takes no new trial on a going-away machine"
    study = load(exp)
    victim = study.trials[0]
    assert victim.state == TrialState.FAIL and victim.user_attrs[ATTR.FAILURE].startswith("preempted")
    assert state_of(victim) == "preempted"
    counts = first.summary.counts
    assert (counts["preempted"], counts["failed"]) == (1, 0), "a preemption is not the objective's failure"
    parent = mlflow_runs(mlflow_client, "spot").parents[0]
    assert (parent.data.metrics["n_preempted"], parent.data.metrics["n_failed"]) == (1.0, 0.0)
    queued = [t for t in study.trials if t.state == TrialState.WAITING]
    assert len(queued) == 1 and queued[0].user_attrs[ATTR.RETRY_OF] == 0
    run = mlflow_runs(mlflow_client, "spot").children[0]
    assert run.info.status == "KILLED" and run.data.tags["autotweak.state"] == "preempted"
    kept = {a.path for a in mlflow_client.list_artifacts(run.info.run_id, "checkpoint")}
    assert kept == {"checkpoint/step.txt"}, "the checkpoint went to the artifact store"

    metadata.clear()
    shutil.rmtree(home / "checkpoints")  # the next worker runs on another machine
    second = autotweak.optimize(exp, resume=True)
    study = load(exp)
    retry = study.trials[queued[0].number]
    assert retry.state == TrialState.COMPLETE
    starts = [
        line.split()[2] for line in marker.read_text().splitlines() if line.startswith(f"{retry.number} ")
    ]
    assert starts and starts[0] != "start=0", "the retry resumed from the uploaded checkpoint"
    runs = mlflow_runs(mlflow_client, "spot")
    assert runs.children[retry.number].data.tags["autotweak.retry_of"] == "0"
    counted = [t for t in study.trials if ATTR.RETRY_OF not in t.user_attrs]
    assert len(counted) == 2 and sum(t.state == TrialState.COMPLETE for t in study.trials) == 2
    # Each attempt is charged the steps it ran: the retry not the steps its checkpoint saved
    # (a step reported but not yet saved when the notice came is run, and charged, twice).
    ran = {t.number: len(t.intermediate_values) for t in (victim, retry)}
    assert 0 < ran[retry.number] < 6
    charged = {n: runs.children[n].data.metrics["compute"] for n in ran}
    assert charged == pytest.approx({n: k / 6 for n, k in ran.items()})
    assert second.summary.compute == pytest.approx(1 + sum(ran.values()) / 6)


def test_a_retry_queued_while_its_worker_kept_the_checkpoint_resumes_from_that_checkpoint(
    home, make_experiment
):
    exp = make_experiment(name="slow-upload")
    study = create_study(exp, make_storage("memory"))
    study.ask()  # the baseline
    ctx = WorkerContext(
        experiment=exp, storage_url="memory", tracking_uri=None, study_run_id=None, home=str(home)
    )
    session = TrialSession(ctx, study, NullTracker(), seed=0)
    handle = session.begin(study.ask())
    (handle.checkpoint_dir / "step.txt").write_text("2")
    # Its checkpoint took longer to keep than the grace period: a study opened meanwhile queued it.
    requeue(study, handle.number, handle.params, {}, max_retries=2)
    session.finish(handle, Outcome("preempted", 0.5, "preempted: instance-action"), 1.0)
    retries = [t for t in study.trials if t.user_attrs.get(ATTR.RETRY_OF) == handle.number]
    assert len(retries) == 1, "queued once"
    assert retries[0].user_attrs.get(ATTR.CHECKPOINT_RUN) == f"null-{handle.optuna_trial._trial_id}"


def test_a_spot_machine_lost_without_its_notice_preempts_its_trial_a_lost_local_worker_fails_it(
    home, make_experiment, mlflow_client, metadata
):
    """EC2 reclaims without the two-minute notice at times: the trial was not the objective's failure."""
    exp = make_experiment(
        name="reclaimed",
        budget={"trials": 1},
        execution={"workers": 1, "heartbeat_interval": 1, "grace_period": 2},
    )
    autotweak.optimize(exp)  # on a spot machine (its metadata service answers); no notice comes
    assert load(exp).trials[0].user_attrs[ATTR.RECLAIMABLE] is True, "its worker marked it"
    storage = make_storage(resolve_storage_url(exp.storage), heartbeat_interval=1, grace_period=2)
    study = optuna.load_study(study_name="reclaimed", storage=storage)
    worker = MlflowTracker(f"sqlite:///{home / 'mlflow.db'}")
    lost: dict[str, int] = {}
    for machine in ("spot", "local"):  # each worker opens its record, reports, and is gone
        with quiet_optuna():
            trial = ask_reclaimable(study) if machine == "spot" else study.ask()
        trial.suggest_float("x", -5.0, 5.0)
        storage.record_heartbeat(trial._trial_id)
        worker.start_trial(lost_trial_start(study, storage.get_trial(trial._trial_id)))
        trial.report(0.5, 1)
        lost[machine] = trial.number
    worker.close()
    time.sleep(3.5)  # past the grace period (SQLite keeps heartbeats to the second)
    summary = autotweak.Study(exp, resume=True).close()  # its opening sweeps the stale trials
    trials = load(exp).trials
    spot, local = trials[lost["spot"]], trials[lost["local"]]
    assert (state_of(spot), spot.user_attrs[ATTR.FAILURE]) == ("preempted", LOST_MACHINE)
    assert (state_of(local), local.user_attrs[ATTR.FAILURE]) == ("failed", LOST_WORKER)
    assert (summary.counts["preempted"], summary.counts["failed"]) == (1, 1)
    for number in lost.values():  # both run again, up to max_retries, as a noticed preemption is
        retries = [t for t in trials if t.user_attrs.get(ATTR.RETRY_OF) == number]
        assert [(t.state, t.user_attrs[ATTR.ATTEMPT]) for t in retries] == [(TrialState.WAITING, 2)]
    runs = mlflow_runs(mlflow_client, "reclaimed")
    spot_run, local_run = runs.children[lost["spot"]], runs.children[lost["local"]]
    assert (spot_run.info.status, spot_run.data.tags["autotweak.state"]) == ("KILLED", "preempted")
    assert spot_run.data.tags["autotweak.failure"] == LOST_MACHINE
    assert (local_run.info.status, local_run.data.tags["autotweak.state"]) == ("FAILED", "failed")
    parent = runs.parents[0].data.metrics
    assert (parent["n_preempted"], parent["n_failed"]) == (1.0, 1.0)
    report = build_report(load(exp))
    assert "| preempted | 1 |" in report.to_markdown()
    assert report.failures is not None and [row[2] for row in report.failures.rows] == [str(lost["local"])]


def test_no_trial_completed_says_the_preempted_ones_apart_from_failures(home, make_experiment, caplog):
    exp = make_experiment(name="all-lost")
    study = create_study(exp, make_storage("memory"))
    trial = study.ask()  # the baseline, lost with its spot machine
    trial.set_user_attr(ATTR.PREEMPTED, True)
    study.tell(trial, state=TrialState.FAIL)
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        say_if_none_completed(study, summarize(study))
    assert caplog.messages == [
        "study 'all-lost': no trial completed, 1 preempted (their machines went away; not the objective's "
        "fault); resume the study to run them again: optimize(..., resume=True) or "
        "`autotweak resume all-lost`"
    ]


def test_a_study_whose_preempted_trials_spent_its_budget_is_told_the_resume_that_runs_them_again(
    home, make_experiment, caplog
):
    """A plain ``autotweak resume`` runs nothing then: the warning names the ``--trials`` that does."""
    script = home / "always.py"
    script.write_text(PREEMPTED_ALWAYS)
    exp = make_experiment(objective=f"{script}:train", budget={"trials": 2}, execution={"max_retries": 0})
    with caplog.at_level(logging.WARNING, logger="autotweak"):
        result = autotweak.optimize(exp, track=False)
    assert result.summary.counts["preempted"] == 2
    said = [r.getMessage() for r in caplog.records if "no trial completed" in r.getMessage()]
    assert said == [
        "study 'study': no trial completed, 2 preempted (their machines went away; not the objective's "
        "fault); resume the study to run them again (its 2 trial(s) spent its budget; --trials is the "
        "study's total): `autotweak resume study --trials 4`"
    ]


PREEMPTED_ALWAYS = (
    "from autotweak.engine._preemption import TrialPreempted\n\n"
    "def train(config, trial):\n"
    "    raise TrialPreempted('instance-action')\n"
)


def test_a_worker_process_killed_on_a_live_machine_fails_its_trial_which_runs_again_once(
    home, make_experiment, monkeypatch
):
    """SIGKILL while the supervisor lives (the OOM killer): the config's failure, run again once at most."""
    exp = make_experiment(name="oom", execution={"workers": 1, "max_retries": 3})
    study = create_study(exp, make_storage("memory"))
    with MetadataService("i-0123456789abcdef0") as imds:
        monkeypatch.setenv("AUTOTWEAK_IMDS_ENDPOINT", imds.endpoint)
        for _ in range(2):  # the first attempt, then its retry, each killed
            with quiet_optuna():
                trial = ask_reclaimable(study)  # on a spot machine: lost with it, it would be preempted
            killed = WorkerResult(error="autotweak-worker-0 exited with code -9", last_trial=trial._trial_id)
            killed.killed = True
            settle_crashed_workers(study, NullTracker(), exp, [killed])
    first, retry = study.trials
    for attempt in (first, retry):
        assert state_of(attempt) == "failed", attempt.user_attrs
        assert attempt.user_attrs[ATTR.FAILURE] == (
            "worker process killed (SIGKILL, likely out of memory) on instance i-0123456789abcdef0"
        )
    assert (retry.user_attrs[ATTR.RETRY_OF], retry.user_attrs[ATTR.ATTEMPT]) == (first.number, 2)
    assert len(study.trials) == 2, "killed twice: not run a third time, though max_retries is 3"


class _MachineGone(BaseException):
    """The spot machine went away: nothing more of its worker runs."""


def test_a_spot_machine_lost_right_after_its_worker_asked_for_a_trial_preempts_it(
    home, make_experiment, metadata, monkeypatch
):
    """Lost between the ask and anything else the worker writes, the trial is still known to be a spot one."""
    exp = make_experiment(
        name="asked", budget={"trials": 2}, execution={"heartbeat_interval": 1, "grace_period": 2}
    )
    run_trial = _Loop._run_trial

    def gone_after_the_ask(loop: _Loop, trial: optuna.Trial, interrupts: object) -> None:
        if trial.number == 0:  # the baseline, taken from the queue, runs
            return run_trial(loop, trial, interrupts)
        loop.storage.record_heartbeat(trial._trial_id)  # its heartbeat thread's first beat, then nothing
        raise _MachineGone

    monkeypatch.setattr(_Loop, "_run_trial", gone_after_the_ask)
    with pytest.raises(_MachineGone):
        autotweak.optimize(exp)
    time.sleep(3.5)  # past the grace period (SQLite keeps heartbeats to the second)
    autotweak.Study(exp, resume=True).close()  # its opening sweeps the stale trials
    baseline, lost = load(exp).trials[:2]
    assert baseline.user_attrs[ATTR.RECLAIMABLE] is True, "a queued trial is marked as it is taken"
    assert (state_of(lost), lost.user_attrs[ATTR.FAILURE]) == ("preempted", LOST_MACHINE)


def test_the_kernel_says_whether_its_oom_killer_ended_a_process(tmp_path):
    """Linux counts OOM kills in /proc/vmstat; elsewhere (or an older kernel) nothing is claimed."""
    vmstat = tmp_path / "vmstat"
    vmstat.write_text("nr_free_pages 5\noom_kill 3\npgfault 9\n")
    assert oom_kills(vmstat) == 3
    vmstat.write_text("nr_free_pages 5\n")
    assert oom_kills(vmstat) is None
    assert oom_kills(tmp_path / "absent") is None
    assert [killed_reason(oom, "host gpu-1") for oom in (True, False, None)] == [
        "worker process killed (SIGKILL, by the kernel's OOM killer: out of memory) on host gpu-1",
        "worker process killed (SIGKILL, not by the kernel's OOM killer) on host gpu-1",
        "worker process killed (SIGKILL, likely out of memory) on host gpu-1",
    ]


PREEMPTED_ONCE = (
    "from pathlib import Path\n"
    "from autotweak.engine._preemption import TrialPreempted\n\n"
    "def train(config, trial):\n"
    "    mark = Path(config['marks']) / f\"{config['x']:.9f}\"\n"
    "    if not mark.exists():\n"
    "        mark.touch()\n"
    "        raise TrialPreempted('instance-action')\n"
    "    return config['x']\n"
)


def test_the_progress_count_never_steps_back_as_a_preempted_trial_runs_again(
    home, make_experiment, monkeypatch
):
    """Read between a preempted trial's failure and its retry's queueing, the count holds.

    Its worker tells it FAIL, keeps its checkpoint, then queues its retry: a count read in
    between counted the preempted trial, then one less once its retry stood in for it.
    """
    script = home / "once.py"
    script.write_text(PREEMPTED_ONCE)
    (home / "marks").mkdir()
    exp = make_experiment(
        objective=f"{script}:train", base={"x": 0.0, "marks": str(home / "marks")}, budget={"trials": 4}
    )
    around = count_around_requeue(monkeypatch, autotweak.engine._session, exp)
    shown: list[int] = []
    result = autotweak.optimize(exp, on_progress=lambda progress: shown.append(progress.done))
    assert len(around) == 4, "each config was preempted once and queued again"
    assert all(before <= after for before, after in around), around
    assert shown == sorted(shown), f"the count shown stepped back: {shown}"
    counts = {state: n for state, n in result.summary.counts.items() if n}
    assert counts == {"complete": 4, "preempted": 4} and done(load(exp), exp) == 4
