"""Spot machines taken away, through the launcher: with the two-minute warning, and without one.

Each simulated instance has its own metadata service (see ``tests/aws/conftest.py``), so the
workers poll it for a notice and mark the trials they run as run on a spot machine, as on EC2.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from autotweak.engine._killed import KILLED
from autotweak.engine._stale import LOST_MACHINE
from autotweak.engine._study import ATTR, state_of
from tests.aws.conftest import SimulatedHosts
from tests.aws.test_spot_executor import alive, aws_section, instances, wait_until
from tests.conftest import objective
from tests.engine.test_workers import assert_stores_agree, running_cli, write_spec
from tests.helpers import mlflow_runs


def _spec(home: Path, stores, name: str, **base: object) -> Path:
    """Six trials of 6 steps on 2 spot workers; ``checkpointed`` resumes from its last step."""
    return write_spec(
        home / f"{name}.yaml",
        name=name,
        objective=objective("checkpointed"),
        base={"marker": str(home / f"{name}.marks"), "steps": 6, **base},
        metric={"name": "loss", "direction": "minimize", "steps": 6},
        budget={"trials": 6},
        execution={"workers": 2, "heartbeat_interval": 1, "grace_period": 3, "aws": aws_section(fleet=False)},
        storage=stores.storage,
        tracking_uri=stores.tracking_uri,
    )


def _running_on(hosts, study: optuna.Study, marks: Path) -> tuple[str, int] | None:
    """A host's instance id and the trial its worker runs now, from the marks and the storage."""
    if not marks.exists():
        return None
    running = {t.number for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING}
    for line in reversed(marks.read_text().splitlines()):
        number, pid = (int(field) for field in line.split()[:2])
        if number in running and (iid := hosts.host_of(pid)) is not None:
            return iid, number
    return None


def _wait_for_a_running_trial(hosts, stores, name: str, marks: Path) -> tuple[str, int]:
    found: list[tuple[str, int]] = []

    def running() -> bool:
        try:
            study = optuna.load_study(study_name=name, storage=stores.storage)
        except KeyError:  # not created yet
            return False
        found[:] = [hit] if (hit := _running_on(hosts, study, marks)) else []
        return bool(found)

    wait_until(running, 120, "a worker on an instance to run a trial")
    return found[0]


@contextmanager
def _a_trial_running(
    home: Path, stores, simulated_hosts, name: str, sleep: float
) -> Iterator[tuple[subprocess.Popen[str], SimulatedHosts, str, int]]:
    """``autotweak optimize`` on spot workers, once a worker runs a trial: the CLI, the hosts, which, what."""
    hosts = simulated_hosts(name)
    args = ["optimize", str(_spec(home, stores, name, sleep=sleep)), "--executor", "aws-spot"]
    with running_cli(args, home.parent) as proc:
        iid, victim = _wait_for_a_running_trial(hosts, stores, name, home / f"{name}.marks")
        yield proc, hosts, iid, victim


@pytest.mark.slow
def test_a_notice_preempts_the_trial_which_resumes_on_a_replacement(home, aws_stores, ec2, simulated_hosts):
    name = "spot-notice"
    marks = home / f"{name}.marks"
    with _a_trial_running(home, aws_stores, simulated_hosts, name, 0.4) as (proc, hosts, iid, victim):
        checkpoint = hosts.folder / iid
        wait_until(lambda: any(checkpoint.rglob("step.txt")), 60, "the trial's first checkpoint")
        hosts.interrupt(iid)
        out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert "stopped (trials)" in out, out

    study = optuna.load_study(study_name=name, storage=aws_stores.storage)
    trial = study.trials[victim]
    assert state_of(trial) == "preempted", (trial.state, trial.user_attrs)
    assert trial.user_attrs[ATTR.FAILURE].startswith("preempted"), trial.user_attrs[ATTR.FAILURE]
    assert not [t for t in study.trials if state_of(t) == "failed"], "a preemption is not a failure"
    (retry,) = [t for t in study.trials if t.user_attrs.get(ATTR.RETRY_OF) == victim]
    assert retry.state == TrialState.COMPLETE
    starts = [
        line.split()[2] for line in marks.read_text().splitlines() if int(line.split()[0]) == retry.number
    ]
    assert starts[-1] != "start=0", f"the retry resumed from the kept checkpoint: {starts}"
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 6

    launched = instances(ec2, name)
    assert len(launched) == 3, "the interrupted instance was replaced"
    assert not alive(ec2, name)
    client = MlflowClient(aws_stores.tracking_uri)
    assert_stores_agree(client, study)
    runs = mlflow_runs(client, name)
    killed = [r for r in runs.children.values() if r.data.tags.get("autotweak.state") == "preempted"]
    assert [r.info.status for r in killed] == ["KILLED"]


@pytest.mark.slow
def test_a_machine_gone_without_a_notice_counts_its_trial_preempted(home, aws_stores, ec2, simulated_hosts):
    name = "spot-vanish"
    with _a_trial_running(home, aws_stores, simulated_hosts, name, 0.5) as (proc, hosts, iid, victim):
        hosts.vanish(iid)
        ec2.terminate_instances(InstanceIds=[iid])
        out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out

    study = optuna.load_study(study_name=name, storage=aws_stores.storage)
    trial = study.trials[victim]
    assert trial.user_attrs.get(ATTR.RECLAIMABLE), "the worker marked its trial as run on a spot machine"
    assert state_of(trial) == "preempted", (trial.state, trial.user_attrs)
    assert trial.user_attrs[ATTR.FAILURE] == LOST_MACHINE
    assert not [t for t in study.trials if state_of(t) == "failed"]
    (retry,) = [t for t in study.trials if t.user_attrs.get(ATTR.RETRY_OF) == victim]
    assert retry.state == TrialState.COMPLETE
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 6
    assert len(instances(ec2, name)) == 3 and not alive(ec2, name)
    assert_stores_agree(MlflowClient(aws_stores.tracking_uri), study)


def _pid_of(marks: Path, number: int) -> int:
    """The process that last started trial ``number``, from the marks the objective writes."""
    return next(
        int(line.split()[1])
        for line in reversed(marks.read_text().splitlines())
        if line.split()[0] == str(number)
    )


@pytest.mark.slow
def test_a_worker_process_killed_on_a_live_machine_fails_its_trial_once(
    home, aws_stores, ec2, simulated_hosts
):
    """The OOM killer SIGKILLs the training process; the machine goes on: a failure, not a preemption."""
    name = "spot-oom"
    marks = home / f"{name}.marks"
    with _a_trial_running(home, aws_stores, simulated_hosts, name, 0.5) as (proc, _, iid, victim):
        os.kill(_pid_of(marks, victim), signal.SIGKILL)  # as the OOM killer does: that process only
        out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out

    study = optuna.load_study(study_name=name, storage=aws_stores.storage)
    trial = study.trials[victim]
    assert state_of(trial) == "failed", (trial.state, trial.user_attrs)
    assert not trial.user_attrs.get(ATTR.PREEMPTED), "the machine did not go away"
    reason = trial.user_attrs[ATTR.FAILURE]
    assert reason.startswith(KILLED) and reason.endswith(f") on instance {iid}"), reason
    (retry,) = [t for t in study.trials if t.user_attrs.get(ATTR.RETRY_OF) == victim]
    assert retry.state == TrialState.COMPLETE, "run again once, in a fresh worker process"
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 6
    assert len(instances(ec2, name)) == 2, "the machine was kept: a new worker process took its place"
    assert not alive(ec2, name)
    client = MlflowClient(aws_stores.tracking_uri)
    assert_stores_agree(client, study)
    run = mlflow_runs(client, name).children[victim]
    assert run.data.tags["autotweak.state"] == "failed"
    assert run.data.tags["autotweak.failure"] == reason
    assert f"trial {victim} fail ({KILLED}" in out, out


@pytest.mark.slow
def test_a_machine_lost_before_its_trials_first_heartbeat_is_found_by_the_launcher(
    home, aws_stores, ec2, simulated_hosts
):
    """The study's last trial, left running with no heartbeat and no worker to sweep it: the launcher does."""
    name = "spot-orphan"
    spec = write_spec(
        home / f"{name}.yaml",
        name=name,
        objective=objective("lost_before_its_heartbeat"),
        base={"marker": str(home / f"{name}.once"), "storage": aws_stores.storage, "x": 0.5},
        metric={"name": "loss", "direction": "minimize"},
        budget={"trials": 1},
        execution={"workers": 1, "heartbeat_interval": 1, "grace_period": 3, "aws": aws_section(fleet=False)},
        storage=aws_stores.storage,
        tracking_uri=aws_stores.tracking_uri,
    )
    simulated_hosts(name)
    with running_cli(["optimize", str(spec), "--executor", "aws-spot"], home.parent) as proc:
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out

    study = optuna.load_study(study_name=name, storage=aws_stores.storage)
    lost, retry = study.trials
    assert (state_of(lost), lost.user_attrs[ATTR.FAILURE]) == ("preempted", LOST_MACHINE)
    assert retry.user_attrs[ATTR.RETRY_OF] == lost.number and retry.state == TrialState.COMPLETE
    assert len(instances(ec2, name)) == 2 and not alive(ec2, name)
