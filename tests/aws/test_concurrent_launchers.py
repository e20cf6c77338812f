"""Two launchers on one study at once: each counts its own instances, and a slow launch call is no crash."""

from __future__ import annotations

import time

import optuna
import pytest

from autotweak._trial_costs import BASE_ATTR, spot_dollars
from autotweak.aws._cost import recorded_cost
from autotweak.aws._leftovers import LauncherRecord, write_record
from tests.aws.held_launch import HeldLaunch
from tests.aws.test_killed_launcher import records, templates
from tests.aws.test_launcher_control import MINIMUM_S, MOTO_PRICE, cost_usd
from tests.aws.test_spot_executor import alive, spot_spec, wait_until
from tests.engine.test_workers import ctrl_c, running_cli, start_cli

_SILENT_S = 3 * 0.5 + 10.0  # a record silent this long (3 polls of 0.5 s, and 10 s) is taken for gone


def _study_attrs(storage: str, name: str) -> dict:
    return optuna.load_study(study_name=name, storage=storage).user_attrs


def _usd(storage: str, name: str, launcher: str) -> float:
    record = records(storage, name)[launcher]
    return 0.0 if record is None else record.usd


@pytest.mark.slow  # 30-60 s: two launchers, one after the other's start, both ended by their wall time
def test_two_launchers_at_once_each_add_their_instances_to_the_study_cost(home, aws_stores, ec2):
    """`optimize` and a `resume` of its study while it runs: the study's cost is both launchers' bills."""
    name = "spot-two-launchers"
    spec = spot_spec(home, aws_stores, name, 400)
    first = start_cli(["optimize", str(spec), "--executor", "aws-spot", "--wall-time", "25s"], home.parent)
    try:
        wait_until(lambda: len(alive(ec2, name)) == 2, 120, "the first launcher's 2 instances")
        second = start_cli(["resume", str(spec), "--executor", "aws-spot", "--wall-time", "5s"], home.parent)
        out2, _ = second.communicate(timeout=120)
        assert second.returncode == 0, out2
        out1, _ = first.communicate(timeout=120)
        assert first.returncode == 0, out1
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    bills = records(aws_stores.storage, name)
    assert len(bills) == 2 and all(b is not None and not b.open for b in bills.values()), bills
    each = [b.usd for b in bills.values() if b is not None]
    assert min(each) >= 2 * MINIMUM_S * MOTO_PRICE / 3600, "each launched 2 instances, a minute each at least"
    after = cost_usd(aws_stores.storage, name)
    assert after == pytest.approx(sum(each), rel=1e-9), (each, after)
    assert spot_dollars(_study_attrs(aws_stores.storage, name)) == pytest.approx(sum(each), rel=1e-9)
    assert "ended without billing" not in out1 + out2


@pytest.mark.slow  # 40-60 s: a launch call held past the silence threshold (11.5 s), a second session
def test_a_launcher_held_in_its_launch_call_is_not_taken_for_killed(home, aws_stores, ec2, monkeypatch):
    """CreateFleet's answer held longer than 3 polls + 10 s while another session of the study looks.

    The launcher's record keeps being written (its heartbeat): the other session neither
    deletes its launch template nor bills its instances; the launcher bills them itself, once.
    """
    name = "spot-held-alive"
    spec = spot_spec(home, aws_stores, name, 400, fleet=True)
    moto = aws_stores.env["AWS_ENDPOINT_URL"]
    with HeldLaunch(moto) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        with running_cli(
            ["optimize", str(spec), "--executor", "aws-spot", "--wall-time", "120s"], home.parent
        ) as proc:
            assert proxy.launched.wait(timeout=120), "the launcher reached EC2's fleet call"
            held_at = time.time()
            [launcher] = records(aws_stores.storage, name)
            wait_until(lambda: time.time() > held_at + _SILENT_S + 1, 30, "the call to outlast the threshold")
            record = records(aws_stores.storage, name)[launcher]
            assert record is not None and record.open and not record.gone(time.time()), record
            kept = templates(ec2, name)
            assert kept, "the fleet's launch template exists during the call"

            monkeypatch.setenv("AWS_ENDPOINT_URL", moto)
            other = start_cli(
                ["resume", str(spec), "--executor", "aws-spot", "--wall-time", "2s"], home.parent
            )
            out, _ = other.communicate(timeout=120)
            assert other.returncode == 0, out
            assert "ended without billing" not in out, out
            assert set(kept) <= set(templates(ec2, name)), "the held launcher's template is not deleted"
            assert proxy.instance_ids
            proxy.release.set()
            least = len(proxy.instance_ids) * MINIMUM_S * MOTO_PRICE / 3600
            wait_until(lambda: _usd(aws_stores.storage, name, launcher) >= least, 60, "its poll to bill them")
            out = ctrl_c(proc)
            assert proc.returncode == 130, out
    bills = records(aws_stores.storage, name)
    mine = bills.pop(launcher)
    assert mine is not None and not mine.open
    assert mine.usd >= least, "it billed what the call launched"
    [theirs] = bills.values()
    assert theirs is not None and not theirs.open
    assert cost_usd(aws_stores.storage, name) == pytest.approx(mine.usd + theirs.usd, rel=1e-9)


@pytest.mark.parametrize(
    ("attrs", "base"),
    [
        ({"autotweak.cost_usd": 1.0}, 1.0),  # before launcher records
        (
            {
                "autotweak.cost_usd": 1.0,
                "autotweak.launcher.old": {"usd": 0.25, "at": 0, "every": 1, "open": False},
            },
            0.75,
        ),
        ({}, 0.0),  # a new study
    ],
)
def test_a_study_of_an_older_version_keeps_its_cost_and_launchers_add_to_it(attrs, base):
    """Its autotweak.cost_usd, less the records it already counts, becomes the base; records add to it."""
    study = optuna.create_study()
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    assert recorded_cost(study, "new") == pytest.approx(attrs.get("autotweak.cost_usd", 0.0))
    assert study.user_attrs[BASE_ATTR] == pytest.approx(base)
    write_record(study, "new", LauncherRecord(0.5, 0.0, 1.0))
    assert recorded_cost(study, "other") == pytest.approx(attrs.get("autotweak.cost_usd", 0.0) + 0.5)
    assert recorded_cost(study, "new") == pytest.approx(attrs.get("autotweak.cost_usd", 0.0))
    assert spot_dollars(study.user_attrs) == pytest.approx(attrs.get("autotweak.cost_usd", 0.0) + 0.5)
