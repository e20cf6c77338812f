"""A launcher killed (SIGKILL) or cut short mid-launch: its instances are billed once, its templates go."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import boto3
import optuna
import pytest

from autotweak.aws._cost import PriceBound
from autotweak.aws._ec2 import STUDY_TAG, find_instances
from autotweak.aws._leftovers import RECORD_PREFIX, LauncherRecord, Leftovers
from tests.aws.held_launch import HeldLaunch
from tests.aws.test_launcher_control import MINIMUM_S, MOTO_PRICE, cost_usd
from tests.aws.test_spot_executor import alive, spot_spec, wait_until
from tests.engine.test_workers import ctrl_c, running_cli, start_cli


def templates(ec2, study: str) -> list[str]:
    filters = [{"Name": f"tag:{STUDY_TAG}", "Values": [study]}]
    return [
        t["LaunchTemplateName"] for t in ec2.describe_launch_templates(Filters=filters)["LaunchTemplates"]
    ]


def records(storage: str, name: str) -> dict[str, LauncherRecord | None]:
    attrs = optuna.load_study(study_name=name, storage=storage).user_attrs
    return {
        k.removeprefix(RECORD_PREFIX): LauncherRecord.read(v)
        for k, v in attrs.items()
        if k.startswith(RECORD_PREFIX)
    }


@pytest.mark.slow  # 40-60 s: a launcher, its record gone stale (11.5 s), and a second session
def test_a_launcher_killed_inside_the_launch_call_is_billed_by_the_next_session_once(
    home, aws_stores, ec2, monkeypatch
):
    """SIGKILL while EC2's answer to the fleet call is held: the instances exist, the launcher never saw them.

    Its watchdog terminates them and deletes the fleet's launch template; nothing bills them
    until the next session of the study finds the launcher gone (its record open, silent).
    """
    name = "spot-killed"
    spec = spot_spec(home, aws_stores, name, 4, fleet=True)
    moto = aws_stores.env["AWS_ENDPOINT_URL"]
    with HeldLaunch(moto) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        with running_cli(["optimize", str(spec), "--executor", "aws-spot"], home.parent) as proc:
            assert proxy.launched.wait(timeout=120), "the launcher reached EC2's fleet call"
            assert templates(ec2, name), "the fleet's launch template exists during the call"
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=30)
        launched = sorted(proxy.instance_ids)
        assert launched
        wait_until(lambda: not alive(ec2, name), 30, "the watchdog to terminate the instances")
        wait_until(lambda: not templates(ec2, name), 30, "the watchdog to delete the launch template")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)
    killed = cost_usd(aws_stores.storage, name)
    assert killed == 0.0, "the launcher was killed before it saw its instances: nothing billed them"
    [(launcher, record)] = records(aws_stores.storage, name).items()
    assert record is not None and record.open
    wait_until(lambda: record.gone(time.time()), 30, "the killed launcher's record to go silent")

    proc = start_cli(["resume", str(spec), "--executor", "aws-spot", "--wall-time", "2s"], home.parent)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert f"launcher {launcher} ended without billing its {len(launched)} instance(s)" in out, out
    settled = records(aws_stores.storage, name)
    billed = settled.pop(launcher)
    assert billed is not None and not billed.open, "closed: no later session bills them again"
    assert billed.usd >= len(launched) * MINIMUM_S * MOTO_PRICE / 3600, "a minute each, at least"
    [second] = settled.values()
    assert second is not None and not second.open
    after = cost_usd(aws_stores.storage, name)
    assert after == pytest.approx(billed.usd + second.usd, rel=1e-9), (killed, after)
    line = next(x for x in out.splitlines() if x.startswith("instances cost"))
    assert re.fullmatch(
        rf"instances cost (<\$0\.01|\$0\.00) this session, <\$0\.01 for study '{name}' in all "
        rf"\(includes <\$0\.01 for {len(launched)} instance\(s\) of a launcher killed before it billed "
        r"them; \d+ instance\(s\) priced at most <\$0\.0001/h: their price was never read\)",
        line,
    ), line

    # A third session sees the same terminated instances: it charges nothing.
    study = optuna.load_study(study_name=name, storage=aws_stores.storage)
    everyone = find_instances(boto3.client("ec2"), name)
    assert Leftovers("a-third-launcher").settle(study, everyone, PriceBound(), time.time()) == 0.0
    assert cost_usd(aws_stores.storage, name) == after


@pytest.mark.parametrize("kill", ["ctrl-c", "sigkill"])
def test_a_launch_template_left_between_its_creation_and_the_fleet_call_is_deleted(
    home, aws_stores, ec2, monkeypatch, kill
):
    """Cut short while EC2's answer to CreateLaunchTemplate is held: the launcher never learned its id.

    Ctrl-C: the launcher's close deletes it. SIGKILL: its watchdog does.
    """
    name = f"spot-template-{kill}"
    spec = spot_spec(home, aws_stores, name, 4, fleet=True)
    with HeldLaunch(aws_stores.env["AWS_ENDPOINT_URL"], (b"Action=CreateLaunchTemplate",)) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        with running_cli(["optimize", str(spec), "--executor", "aws-spot"], home.parent) as proc:
            assert proxy.launched.wait(timeout=120), "the launcher reached CreateLaunchTemplate"
            assert templates(ec2, name) == [f"autotweak-{next(iter(records(aws_stores.storage, name)))}"]
            if kill == "ctrl-c":
                out = ctrl_c(proc)
                assert proc.returncode == 130, out
                assert "deleted 1 launch template(s) left by a launcher" in out, out
            else:
                os.kill(proc.pid, signal.SIGKILL)
                proc.communicate(timeout=30)
        wait_until(lambda: not templates(ec2, name), 30, "the launch template to be deleted")
    assert not alive(ec2, name)


def _watchdog_of(launcher: str) -> int:
    """The pid of the watchdog the launcher started (its command line names the launcher)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"autotweak.aws._watchdog" in argv and launcher.encode() in argv:
                return int(entry)
    raise AssertionError(f"no watchdog of launcher {launcher} runs")


@pytest.mark.slow  # 30-50 s: a launcher, its record gone stale (11.5 s), and a second session
def test_the_next_session_deletes_the_template_of_a_launcher_whose_machine_was_lost(
    home, aws_stores, ec2, monkeypatch
):
    """The launcher and its watchdog killed together while CreateLaunchTemplate's answer is held."""
    name = "spot-template-lost"
    spec = spot_spec(home, aws_stores, name, 4, fleet=True)
    moto = aws_stores.env["AWS_ENDPOINT_URL"]
    with HeldLaunch(moto, (b"Action=CreateLaunchTemplate",)) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        with running_cli(["optimize", str(spec), "--executor", "aws-spot"], home.parent) as proc:
            assert proxy.launched.wait(timeout=120), "the launcher reached CreateLaunchTemplate"
            [launcher] = records(aws_stores.storage, name)
            watchdog = _watchdog_of(launcher)
            os.kill(watchdog, signal.SIGKILL)
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=30)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)
    assert templates(ec2, name) == [f"autotweak-{launcher}"], "nothing left to delete it"
    record = records(aws_stores.storage, name)[launcher]
    assert record is not None
    wait_until(lambda: record.gone(time.time()), 30, "the killed launcher's record to go silent")

    proc = start_cli(["resume", str(spec), "--executor", "aws-spot", "--wall-time", "2s"], home.parent)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert f"deleted 1 launch template(s) left by a launcher: autotweak-{launcher}" in out, out
    assert templates(ec2, name) == []
