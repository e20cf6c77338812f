"""Stopping the aws-spot launcher or its instances from outside: `autotweak workers stop`, Ctrl-C, a stop."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from autotweak._money import usd_per_hour
from autotweak._trial_costs import ESTIMATE_ATTR
from autotweak.aws import Instance
from autotweak.aws._cost import COST_ATTR, Ledger, PriceBound, StudyCost
from autotweak.engine._retries import requeue
from autotweak.engine._study import ATTR
from autotweak.engine._summary import summarize
from tests.aws.held_launch import HeldLaunch
from tests.aws.test_spot_executor import alive, instances, spot_spec, wait_until
from tests.engine.test_workers import ctrl_c, running_cli, start_cli, wait_for_lines

MOTO_PRICE = 0.00001  # moto's spot price of every type, dollars per instance-hour
MINIMUM_S = 60.0  # AWS bills a Linux spot instance per second, a minute at least


def cost_usd(storage: str, name: str) -> float:
    """The study's ``autotweak.cost_usd``: what its instances cost, over all its sessions."""
    return float(optuna.load_study(study_name=name, storage=storage).user_attrs.get(COST_ATTR, 0.0))


def _optimize(spec: Path) -> list[str]:
    """The CLI's arguments that run ``spec`` on spot workers for a minute at most."""
    return ["optimize", str(spec), "--executor", "aws-spot", "--wall-time", "60s"]


def test_workers_stop_ends_the_study_instead_of_replacing_the_workers(home, aws_stores, ec2, simulated_hosts):
    spec = spot_spec(home, aws_stores, "spot-stop", 400, sleep=0.5)
    simulated_hosts("spot-stop")
    with running_cli(_optimize(spec), home.parent) as proc:
        wait_for_lines(home / "spot-stop.marks", 2, timeout=120)
        stop = start_cli(["workers", "stop", "spot-stop"], home.parent)
        assert "terminated 2 instance(s)" in stop.communicate(timeout=60)[0]
        out, _ = proc.communicate(timeout=120)
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


@pytest.mark.slow  # 30-65 s: it waits for the terminated instances' workers to close their trials
def test_ctrl_c_closes_the_study_as_interrupted_with_the_resume_hint(home, aws_stores, ec2, simulated_hosts):
    spec = spot_spec(home, aws_stores, "spot-int", 400, sleep=0.3, grace_period=6, fleet=False)
    # The shutdown of a terminated instance reaches its worker seconds later, as on EC2: the
    # summary was written meanwhile, and counted running the trials queued again a moment later.
    simulated_hosts("spot-int").shutdown_delay = 4.0
    with running_cli(_optimize(spec), home.parent) as proc:
        wait_for_lines(home / "spot-int.marks", 2, timeout=120)
        out = ctrl_c(proc)
    assert proc.returncode == 130, out
    assert "aborted" not in out and "Traceback" not in out, out
    assert "crashed worker" not in out, "the workers close their own records as their instances shut down"
    assert "`autotweak resume spot-int --executor aws-spot` continues the study" in out
    # Said without -v: instances take minutes to boot, and cost money until they are terminated.
    assert re.search(r"launched \d spot instance\(s\): i-[^;]+; their workers join the study", out), out
    assert re.search(r"terminated \d+ instance\(s\): i-", out), out
    assert "instances cost <$0.01 this session, <$0.01 for study 'spot-int' in all" in out, out
    wait_until(lambda: not alive(ec2, "spot-int"), 30, "the launcher to terminate its instances")
    # The OS of a terminated instance sends its processes SIGTERM: each worker closes its trial
    # as interrupted and queues it again, instead of leaving it RUNNING until a resume's sweep.
    study = optuna.load_study(study_name="spot-int", storage=aws_stores.storage)

    def settled() -> bool:
        """No trial running, and each interrupted one queued again (a worker tells, then queues)."""
        trials = study.get_trials(deepcopy=False)
        interrupted = {t.number for t in trials if t.user_attrs.get(ATTR.INTERRUPTED)}
        queued = {t.user_attrs.get(ATTR.RETRY_OF) for t in trials if t.state == TrialState.WAITING}
        return (
            bool(interrupted) and interrupted <= queued and all(t.state != TrialState.RUNNING for t in trials)
        )

    wait_until(
        settled, 30, "the workers of the terminated instances to close their trials and queue them again"
    )
    trials = study.get_trials(deepcopy=False)
    interrupted = {t.number for t in trials if t.user_attrs.get(ATTR.INTERRUPTED)}
    assert interrupted == {t.user_attrs[ATTR.RETRY_OF] for t in trials if t.state == TrialState.WAITING}
    said = {"waiting": "queued"}  # as `autotweak status` says it
    counts = ", ".join(f"{n} {said.get(state, state)}" for state, n in summarize(study).counts.items() if n)
    assert f"study 'spot-int' stopped (interrupted): {counts}\n" in out, (counts, out)
    assert re.search(r"waiting up to 8 s for the workers of the terminated instances to close their \d", out)


def test_a_stopped_instance_is_no_worker_and_is_not_billed():
    ledger = Ledger()
    launched = datetime.fromtimestamp(1000.0, UTC)
    instance = Instance("i-1", "g5.xlarge", "running", launched, "s", "l", price=3600.0)
    ledger.update([instance], now=1010.0)
    ledger.update([Instance(**{**vars(instance), "state": "stopped"})], now=1100.0)
    assert not Instance(**{**vars(instance), "state": "stopped"}).alive
    assert ledger.spent(now=2000.0) == 100.0, "billed from launch until it was seen stopped"
    assert ledger.hourly_rate() == 0.0


def test_an_instance_is_billed_a_minute_at_least_as_aws_bills_it():
    ledger = Ledger()
    launched = datetime.fromtimestamp(1000.0, UTC)
    ledger.update([Instance("i-1", "g5.xlarge", "terminated", launched, "s", "l", price=3600.0)], now=1005.0)
    assert ledger.spent(now=1005.0) == 60.0, "5 s of an instance are billed as 60 s"
    assert StudyCost(60.0, 60.0, tuple(ledger.estimated())).note() == "", "its price was read"


@pytest.mark.parametrize(
    ("kind", "max_price", "bound"),
    [
        ("g4dn.xlarge", None, 0.1234567),  # RunInstances' type, or the type EC2 says a fleet chose
        ("p3.2xlarge", None, 0.52),  # a type not listed: the dearest listed
        ("p3.2xlarge", 0.3, 0.3),  # ... or max_price, where it is the tighter bound
    ],
)
def test_an_instance_whose_price_was_never_read_is_charged_at_most_what_it_can_cost(kind, max_price, bound):
    ledger = Ledger(PriceBound({"g4dn.xlarge": 0.1234567, "g5.xlarge": 0.52}, max_price))
    launched = datetime.fromtimestamp(1000.0, UTC)
    unpriced = Instance("i-1", kind, "running", launched, "s", "l", price=None)
    ledger.update([unpriced], now=1010.0)
    assert ledger.spent(now=1030.0) == pytest.approx(bound * 60.0 / 3600.0), "a minute at least, at the bound"
    assert ledger.estimated() == [bound]
    cost = StudyCost(ledger.spent(1030.0), ledger.spent(1030.0), tuple(ledger.estimated()))
    assert cost.note() == (
        f" (includes 1 instance(s) priced at most {usd_per_hour(bound)}: their price was never read)"
    )
    ledger.update([Instance(**{**vars(unpriced), "price": 0.1})], now=1040.0)
    assert ledger.estimated() == [], "its tag, written since, is its price"
    assert ledger.spent(now=1360.0) == pytest.approx(0.1 * 360.0 / 3600.0)


def test_a_stopped_instance_is_terminated_and_replaced(home, aws_stores, ec2, simulated_hosts):
    spec = spot_spec(home, aws_stores, "spot-stopped", 400, sleep=0.3, fleet=False)
    simulated_hosts("spot-stopped")
    with running_cli(_optimize(spec), home.parent) as proc:
        wait_for_lines(home / "spot-stopped.marks", 2, timeout=120)
        first = alive(ec2, "spot-stopped")[0]
        ec2.stop_instances(InstanceIds=[first])

        def state(iid: str) -> str:
            return next(i["State"]["Name"] for i in instances(ec2, "spot-stopped") if i["InstanceId"] == iid)

        wait_until(lambda: state(first) == "terminated", 30, "the launcher to terminate the stopped instance")
        wait_until(lambda: len(alive(ec2, "spot-stopped")) == 2, 30, "a replacement")
        out = ctrl_c(proc)
    assert f"instance(s) {first} stopped: they run no worker; terminating them" in out
    assert len(instances(ec2, "spot-stopped")) == 3
    wait_until(lambda: not alive(ec2, "spot-stopped"), 30, "the launcher to terminate its instances")


def test_workers_stop_waits_for_the_cut_trials_to_be_queued_again(home, aws_stores, ec2):
    """A worker tells its trial interrupted, then queues it: the launcher waits for the queueing.

    The test plays the stopped worker (no simulated hosts) and stays between the two
    writes for two seconds: four of the launcher's polls, each of which sees no trial running.
    """
    spec = spot_spec(home, aws_stores, "spot-owed", 400, fleet=False)
    with running_cli(_optimize(spec), home.parent) as proc:
        wait_until(lambda: len(alive(ec2, "spot-owed")) == 2, 60, "the launcher's instances")
        study = optuna.load_study(study_name="spot-owed", storage=aws_stores.storage)
        trial = study.ask()
        trial.set_user_attr(ATTR.INTERRUPTED, True)
        study.tell(trial, state=TrialState.FAIL)
        stop = start_cli(["workers", "stop", "spot-owed"], home.parent)
        assert "terminated 2 instance(s)" in stop.communicate(timeout=60)[0]
        time.sleep(2.0)
        assert proc.poll() is None, proc.communicate()[0]
        requeue(study, trial.number, {}, {}, max_retries=2)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "stopped (workers stop)" in out, out
    retries = [t for t in study.trials if t.user_attrs.get(ATTR.RETRY_OF) == trial.number]
    assert len(retries) == 1, "queued once, by its worker: the launcher's close found it queued"


@pytest.mark.parametrize(
    "fleet", [True, pytest.param(False, marks=pytest.mark.slow)], ids=["fleet", "run-instances"]
)  # 20 s each: the launcher's start and the study's close (slow: the fallback's path, as the fleet's)
def test_ctrl_c_inside_the_launch_call_terminates_the_instances_ec2_launched(
    home, aws_stores, ec2, monkeypatch, fleet
):
    """Ctrl-C after EC2 launched but before its answer named the instances: the launcher finds them by tag.

    The proxy holds moto's answer to the launch; the launcher never learns the ids, and its
    "launched ..." line is never printed. The watchdog would sweep them too, into its own log:
    the "terminated" line on the launcher's output is the launcher's own doing.
    """
    name = f"spot-held-{'fleet' if fleet else 'run'}"
    spec = spot_spec(home, aws_stores, name, 4, fleet=fleet)
    with HeldLaunch(aws_stores.env["AWS_ENDPOINT_URL"]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        with running_cli(_optimize(spec), home.parent) as proc:
            assert proxy.launched.wait(timeout=120), "the launcher reached EC2's launch call"
            assert sorted(proxy.instance_ids) == sorted(alive(ec2, name)) and proxy.instance_ids
            out = ctrl_c(proc)
    assert proc.returncode == 130, out
    assert "Traceback" not in out and "launched" not in out, out
    assert "interrupted: terminating the study's instances" in out, out
    said = re.search(r"terminated (\d+) instance\(s\): (i-[^\n]+)", out)
    assert said is not None, out
    assert sorted(said[2].split(", ")) == sorted(proxy.instance_ids), out
    assert not alive(ec2, name), "nothing left running for the watchdog to find"
    assert f"study '{name}' stopped (interrupted): no trials\n" in out, out
    assert f"`autotweak resume {name} --executor aws-spot` continues the study" in out, out
    # Their price tags were never written, and AWS bills them all the same: at least 60 s each,
    # at most at the listed price of their type (moto's: $0.00001/h).
    launched = len(proxy.instance_ids)
    spent = cost_usd(aws_stores.storage, name)
    assert spent >= launched * MINIMUM_S * MOTO_PRICE / 3600, (spent, out)
    study = optuna.load_study(study_name=name, storage=aws_stores.storage)
    assert study.user_attrs[ESTIMATE_ATTR] == [launched, MOTO_PRICE], "for the report"
    line = next(x for x in out.splitlines() if x.startswith("instances cost"))
    assert line == (
        f"instances cost <$0.01 this session, <$0.01 for study '{name}' in all "
        f"(includes {launched} instance(s) priced at most <$0.0001/h: their price was never read)"
    ), out
