"""The aws-spot executor against moto in server mode, with simulated instances running real workers."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from autotweak.aws._ec2 import LAUNCHER_TAG, STUDY_TAG
from autotweak.aws._userdata import IMDS
from autotweak.engine import InlineExecutor
from autotweak.engine._machines import machines_of
from autotweak.engine._study import ATTR
from autotweak.report import build_report
from autotweak.testing.services import FAKE_AWS_ENV
from tests.aws.conftest import PROFILE
from tests.conftest import objective
from tests.engine.test_workers import assert_stores_agree, start_cli, wait_for_lines, write_spec
from tests.helpers import mlflow_runs

TYPES = ["g4dn.xlarge", "g5.xlarge"]


def aws_section(**overrides):
    section = {
        "image_id": "ami-12c6146b",
        "instance_types": TYPES,
        "region": "us-east-1",
        "max_price": 0.5,
        "iam_instance_profile": PROFILE,
        "install": "python3 -m pip install 'autotweak[aws,postgres]'",
        "poll_interval": 0.5,
    }
    section.update(overrides)
    return section


def spot_spec(
    home: Path,
    stores,
    name: str,
    trials: int,
    *,
    sleep: float = 0.1,
    grace_period: int = 3,
    fields: dict | None = None,
    **aws,
) -> Path:
    """``trials`` of objective ``marked`` on 2 spot workers; ``fields`` replace the spec's own."""
    spec = {
        "name": name,
        "objective": objective("marked"),
        "base": {"marker": str(home / f"{name}.marks"), "sleep": sleep},
        "budget": {"trials": trials},
        "execution": {
            "workers": 2,
            "heartbeat_interval": 1,
            "grace_period": grace_period,
            "aws": aws_section(**aws),
        },
        "storage": stores.storage,
        "tracking_uri": stores.tracking_uri,
    }
    return write_spec(home / f"{name}.yaml", **{**spec, **(fields or {})})


def instances(ec2, study: str) -> list[dict]:
    filters = [{"Name": f"tag:{STUDY_TAG}", "Values": [study]}]
    return [i for r in ec2.describe_instances(Filters=filters)["Reservations"] for i in r["Instances"]]


def alive(ec2, study: str) -> list[str]:
    return [i["InstanceId"] for i in instances(ec2, study) if i["State"]["Name"] in ("pending", "running")]


def wait_until(predicate, timeout: float = 60, what: str = "") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_launch_run_and_terminate_everything(home, aws_stores, ec2, simulated_hosts):
    spec = spot_spec(home, aws_stores, "spot-ok", 8)
    hosts = simulated_hosts("spot-ok")
    proc = start_cli(["optimize", str(spec), "--executor", "aws-spot"], home.parent)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    assert "stopped (trials)" in out

    study = optuna.load_study(study_name="spot-ok", storage=aws_stores.storage)
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 8
    marks = Counter(int(line.split()[0]) for line in (home / "spot-ok.marks").read_text().splitlines())
    assert set(marks.values()) == {1}, "each trial ran once"
    assert not alive(ec2, "spot-ok"), "no instance left running"
    launched = instances(ec2, "spot-ok")
    assert len(launched) == 2 and {i["InstanceLifecycle"] for i in launched} == {"spot"}
    assert {i["InstanceType"] for i in launched} <= set(TYPES)
    assert len({t["Value"] for i in launched for t in i["Tags"] if t["Key"] == LAUNCHER_TAG}) == 1

    script = hosts.user_data[launched[0]["InstanceId"]]
    assert f"AUTOTWEAK_IMDS_ENDPOINT={IMDS}" in script and script.rstrip().endswith("shutdown -h now")
    assert f"--storage {aws_stores.storage}" in script and aws_stores.tracking_uri in script

    client = MlflowClient(aws_stores.tracking_uri)
    assert_stores_agree(client, study)
    runs = mlflow_runs(client, "spot-ok")
    assert runs.parents[0].data.metrics["cost_usd"] > 0
    assert all(run.data.metrics["cost_usd"] > 0 for run in runs.children.values())
    assert study.user_attrs["autotweak.cost_usd"] > 0
    report = build_report(study, tracking_uri=aws_stores.tracking_uri)
    said = report.executor_line()
    assert said == "Ran on aws-spot (workers=2).", "its instances' workers did not join: they are its own"
    # moto's prices: the CLI said $1.133e-07 where the report said $0.00
    assert "instances cost <$0.01 this session, <$0.01 for study 'spot-ok' in all" in out, out
    assert "The study's instances cost <$0.01 in all, boot and idle time included." in report.to_markdown()
    assert len({t.user_attrs[ATTR.SESSION] for t in study.trials}) == 1
    # each instance recorded its type once, from its metadata service: the report groups by it
    kinds = {i["InstanceId"]: i["InstanceType"] for i in launched}
    assert {m.instance_id: m.instance_type for m in machines_of(study.user_attrs)} == kinds
    assert {w.worker for w in report.workers} == set(kinds.values())
    assert sum(w.trials for w in report.workers) == 8
    assert f"| {launched[0]['InstanceType']} |" in report.to_markdown()

    # credentials: never in user-data, MLflow params or tags, or any log
    texts = [out, *hosts.user_data.values(), *(h.log.read_text() for h in hosts.hosts.values())]
    texts += [p.read_text() for p in (home / "aws").glob("*.log")]
    for run in [*runs.parents, *runs.children.values()]:
        texts += [repr(run.data.params), repr(run.data.tags)]
    for secret in (FAKE_AWS_ENV["AWS_ACCESS_KEY_ID"], FAKE_AWS_ENV["AWS_SECRET_ACCESS_KEY"]):
        assert not [t for t in texts if secret in t]


@pytest.mark.slow
def test_launcher_killed_mid_study_leaves_no_instance_and_loses_nothing(
    home, aws_stores, ec2, simulated_hosts
):
    spec = spot_spec(home, aws_stores, "spot-kill", 10, sleep=0.3, fleet=False)
    simulated_hosts("spot-kill")
    proc = start_cli(["optimize", str(spec), "--executor", "aws-spot"], home.parent)
    wait_for_lines(home / "spot-kill.marks", 4, timeout=120)
    launched = instances(ec2, "spot-kill")
    assert {i["MetadataOptions"]["HttpTokens"] for i in launched} == {"required"}, "IMDSv2 only"
    assert {i["IamInstanceProfile"]["Arn"].split("/")[-1] for i in launched} == {PROFILE}
    behaviour = ec2.describe_instance_attribute(
        InstanceId=launched[0]["InstanceId"], Attribute="instanceInitiatedShutdownBehavior"
    )
    assert behaviour["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"
    os.kill(proc.pid, signal.SIGKILL)  # the launcher alone: its watchdog lives on
    proc.communicate(timeout=30)
    wait_until(lambda: not alive(ec2, "spot-kill"), 60, "the watchdog to terminate the instances")

    study = optuna.load_study(study_name="spot-kill", storage=aws_stores.storage)
    done = {t.number: t.value for t in study.trials if t.state == TrialState.COMPLETE}
    assert 0 < len(done) < 10
    time.sleep(3.5)  # past the grace period: the killed workers' trials are stale

    local = start_cli(["resume", str(spec), "--workers", "2"], home.parent)
    out, _ = local.communicate(timeout=180)
    assert local.returncode == 0, out
    study = optuna.load_study(study_name="spot-kill", storage=aws_stores.storage)
    assert {n: study.trials[n].value for n in done} == done, "finished trials kept as they were"
    counted = [t for t in study.trials if ATTR.RETRY_OF not in t.user_attrs]
    assert len(counted) == 10, "nothing counted twice"
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 10
    assert_stores_agree(MlflowClient(aws_stores.tracking_uri), study)
    assert not alive(ec2, "spot-kill")


@pytest.mark.slow
def test_dollar_budget_stops_launching_and_stops_workers(home, aws_stores, ec2, simulated_hosts):
    per_second = 0.00001 / 3600  # moto's spot price, per instance-second
    # Two instances for 90 s: each is billed a minute at least, so the replacement (launched once the
    # first ran a trial) starts with 2 minutes spent, and 60 s left to run on (a tenth is kept back).
    budget = per_second * 2 * 90
    spec = spot_spec(home, aws_stores, "spot-dollars", 500, sleep=0.3, budget_usd=budget)
    simulated_hosts("spot-dollars")
    proc = start_cli(["optimize", str(spec), "--executor", "aws-spot"], home.parent)
    wait_for_lines(home / "spot-dollars.marks", 1, timeout=120)
    first = alive(ec2, "spot-dollars")[0]
    ec2.terminate_instances(InstanceIds=[first])  # a spot reclaim: the launcher replaces it
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    assert "dollar budget" in out
    assert "the dollar budget of <$0.01 is spent" in out, out
    assert not alive(ec2, "spot-dollars")
    assert len(instances(ec2, "spot-dollars")) == 3, "one replacement, then nothing once the budget was spent"
    study = optuna.load_study(study_name="spot-dollars", storage=aws_stores.storage)
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) < 500
    assert 0.8 * budget <= study.user_attrs["autotweak.cost_usd"] <= 1.2 * budget


def test_workers_list_and_stop(home, aws_stores, ec2):
    from autotweak._validation import Where
    from autotweak.aws._ec2 import launch
    from autotweak.spec._parts import AwsSpot

    settings = AwsSpot.parse(aws_section(), Where())
    ids = launch(
        ec2, settings, 2, "#!/bin/bash\n", {STUDY_TAG: "listed", LAUNCHER_TAG: "t"}, {"g5.xlarge": 0.1234567}
    )
    listing = start_cli(["workers", "list", "listed"], home.parent).communicate(timeout=60)[0]
    for iid in ids:
        assert iid in listing and "g5.xlarge" in listing and "$0.1235/h" in listing  # to the cent: $0.12/h
    stopped = start_cli(["workers", "stop", "listed"], home.parent).communicate(timeout=60)[0]
    assert "terminated 2 instance(s)" in stopped
    assert not alive(ec2, "listed")
    after = start_cli(["workers", "list", "listed"], home.parent).communicate(timeout=60)[0]
    assert "no worker instances for study 'listed' in region us-east-1 (boto3's default region" in after
    assert "; 2 terminated (`autotweak workers list listed --all` lists them)" in after, after
    again = start_cli(["workers", "stop", "listed"], home.parent).communicate(timeout=60)[0]
    assert "no running instance of study 'listed' in region us-east-1 (" in again, again
    assert again.rstrip().endswith(": nothing to terminate"), again  # it said 'terminated 0 instance(s)'


def test_workers_list_and_stop_search_the_region_of_the_studys_spec(home, aws_stores, monkeypatch):
    """The instances run in the study's region; $AWS_REGION names another."""
    import boto3

    from autotweak._validation import Where
    from autotweak.aws._ec2 import launch
    from autotweak.engine._study import ATTR
    from autotweak.spec._parts import AwsSpot

    far = boto3.client("ec2", region_name="us-west-2")
    settings = AwsSpot.parse(aws_section(region="us-west-2"), Where())
    ids = launch(far, settings, 2, "#!/bin/bash\n", {STUDY_TAG: "far", LAUNCHER_TAG: "t"}, {"g5.xlarge": 0.3})
    study = optuna.create_study(study_name="far", storage=aws_stores.storage)
    study.set_user_attr(ATTR.SPEC, {"name": "far", "execution": {"aws": settings.to_dict()}})
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AUTOTWEAK_STORAGE", aws_stores.storage)
    try:
        listing = start_cli(["workers", "list", "far"], home.parent).communicate(timeout=60)[0]
        assert "in region us-west-2 (the study's 'execution.aws.region')" in listing, listing
        assert all(iid in listing for iid in ids), listing
        elsewhere = start_cli(["workers", "list", "far", "--region", "eu-west-1"], home.parent)
        assert (
            "no worker instances for study 'far' in region eu-west-1 (--region)" in elsewhere.communicate()[0]
        )
        stopped = start_cli(["workers", "stop", "far"], home.parent).communicate(timeout=60)[0]
        assert "terminated 2 instance(s) of study 'far' in region us-west-2" in stopped, stopped
    finally:
        optuna.delete_study(study_name="far", storage=aws_stores.storage)
        far.terminate_instances(InstanceIds=ids)


def test_aws_section_errors_name_the_field(make_experiment):
    from autotweak.exceptions import SpecError

    with pytest.raises(SpecError, match=r"execution\.aws\.max_price.*> 0"):
        make_experiment(execution={"aws": aws_section(max_price=0)})
    with pytest.raises(SpecError, match=r"execution\.aws\.image_id.*required"):
        make_experiment(execution={"aws": {"instance_types": TYPES}})
    for region in ("us-east", "US-EAST-1", "useast1", "us-east-1 "):
        with pytest.raises(SpecError, match=r"execution\.aws\.region.*AWS region name .*got '"):
            make_experiment(execution={"aws": aws_section(region=region)})


@pytest.mark.parametrize(
    ("execution", "refused"),
    [
        ({"workers": 2}, r"'execution\.aws' is required by the aws-spot executor"),
        (
            {"workers": 2, "aws": aws_section()},
            r"'storage' must be a server URL .* got 'sqlite:.*'; give it with --storage, \$AUTOTWEAK_STORAGE "
            r"or 'storage' in the spec \(`HOST=<an address the instances reach> bash scripts/team_stores\.sh",
        ),
    ],
    ids=["no aws section", "sqlite storage"],
)
def test_a_refused_aws_spot_run_creates_no_study_and_no_record(home, make_experiment, execution, refused):
    """The executor's checks run before the study and its MLflow parent run are created."""
    from autotweak import optimize
    from autotweak._locations import resolve_storage_url
    from autotweak.aws import SpotExecutor
    from autotweak.exceptions import AutotweakError

    exp = make_experiment(name="awsx", execution=execution, budget={"trials": 1})
    with pytest.raises(AutotweakError, match=refused):
        optimize(exp, executor=SpotExecutor(2))
    assert optuna.get_all_study_names(resolve_storage_url(None)) == []
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    assert client.get_experiment_by_name("awsx") is None
    assert optimize(exp, executor=InlineExecutor()).summary.counts["complete"] == 1, "the name is free"


def test_workers_stop_of_a_misspelled_study_says_it_is_not_in_the_storage(home, aws_stores, monkeypatch):
    """'terminated 0 instance(s)' alone left the real study's instances running, unsaid."""
    optuna.create_study(study_name="spelled", storage=aws_stores.storage)
    monkeypatch.setenv("AUTOTWEAK_STORAGE", aws_stores.storage)
    try:
        for args in (["workers", "stop", "speled"], ["workers", "list", "speled"]):
            out = start_cli(args, home.parent).communicate(timeout=60)[0]
            assert "warning: no study named 'speled' (did you mean 'spelled'?) in the storage" in out, out
        known = start_cli(["workers", "list", "spelled"], home.parent).communicate(timeout=60)[0]
        assert "no worker instances for study 'spelled'" in known and "warning" not in known, known
    finally:
        optuna.delete_study(study_name="spelled", storage=aws_stores.storage)
