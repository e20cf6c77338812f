"""Stopping the aws-spot launcher from outside: `autotweak workers stop` and Ctrl-C."""

from __future__ import annotations

import os
import signal

import optuna
from optuna.trial import TrialState

from autotweak.engine._study import ATTR
from tests.aws.test_spot_executor import alive, instances, spot_spec, wait_until
from tests.engine.test_workers import start_cli, wait_for_lines


def test_workers_stop_ends_the_study_instead_of_replacing_the_workers(home, aws_stores, ec2, simulated_hosts):
    spec = spot_spec(home, aws_stores, "spot-stop", 400, sleep=0.5)
    simulated_hosts("spot-stop")
    proc = start_cli(["optimize", str(spec), "--executor", "aws-spot", "--wall-time", "60s"], home.parent)
    try:
        wait_for_lines(home / "spot-stop.marks", 2, timeout=120)
        stop = start_cli(["workers", "stop", "spot-stop"], home.parent)
        assert "terminated 2 instance(s)" in stop.communicate(timeout=60)[0]
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 0, out
    assert "stopped (workers stop)" in out, out
    assert "`autotweak workers stop` terminated the instances of study 'spot-stop'" in out
    assert len(instances(ec2, "spot-stop")) == 2, "no replacement launched after `workers stop`"
    assert not alive(ec2, "spot-stop")

    study = optuna.load_study(study_name="spot-stop", storage=aws_stores.storage)
    states = [t.state for t in study.trials]
    assert TrialState.RUNNING not in states, "the stopped workers' trials were failed by the heartbeat"
    requeued = [t for t in study.trials if t.state == TrialState.WAITING and ATTR.RETRY_OF in t.user_attrs]
    assert requeued, "the trials the stop cut short are queued again, as for lost instances"


def test_ctrl_c_closes_the_study_as_interrupted_with_the_resume_hint(home, aws_stores, ec2, simulated_hosts):
    spec = spot_spec(home, aws_stores, "spot-int", 400, sleep=0.3, fleet=False)
    simulated_hosts("spot-int")
    proc = start_cli(["optimize", str(spec), "--executor", "aws-spot", "--wall-time", "60s"], home.parent)
    try:
        wait_for_lines(home / "spot-int.marks", 2, timeout=120)
        os.kill(proc.pid, signal.SIGINT)  # what Ctrl-C sends the launcher
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, out
    assert "aborted" not in out and "Traceback" not in out, out
    assert "`autotweak resume spot-int` continues the study" in out
    wait_until(lambda: not alive(ec2, "spot-int"), 30, "the launcher to terminate its instances")
    # The OS of a terminated instance sends its processes SIGTERM: each worker closes its trial
    # as interrupted and queues it again, instead of leaving it RUNNING until a resume's sweep.
    study = optuna.load_study(study_name="spot-int", storage=aws_stores.storage)

    def running() -> list[int]:
        return [t.number for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]

    wait_until(lambda: not running(), 30, "the workers of the terminated instances to close their trials")
    trials = study.get_trials(deepcopy=False)
    interrupted = {t.number for t in trials if t.user_attrs.get(ATTR.INTERRUPTED)}
    assert interrupted == {t.user_attrs[ATTR.RETRY_OF] for t in trials if t.state == TrialState.WAITING}
