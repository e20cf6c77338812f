"""``budget_usd`` is the study's, over all its launcher sessions: what earlier sessions cost is spent."""

from __future__ import annotations

import re
import time

import optuna
import pytest

from autotweak._trial_costs import BASE_ATTR, spot_dollars
from autotweak.aws._cost import COST_ATTR, MINIMUM_S
from tests.aws.test_spot_executor import instances, spot_spec, wait_until
from tests.engine.test_workers import ctrl_c, running_cli, start_cli, wait_for_lines

# Two launcher sessions of two instances each, with a Ctrl-C between: about a minute.
pytestmark = pytest.mark.slow

PER_SECOND = 0.00001 / 3600  # moto's spot price, per instance-second
BUDGET = PER_SECOND * 2 * 1000  # two instances for 1000 s: a worker's share is 1000 s of wall time


def cost(storage: str, name: str) -> float:
    return float(optuna.load_study(study_name=name, storage=storage).user_attrs.get(COST_ATTR, 0.0))


def spent_before(storage: str, name: str, total: float) -> None:
    """As if earlier sessions had spent ``total`` in all: the base that the launchers' records add to."""
    study = optuna.load_study(study_name=name, storage=storage)
    attrs = study.user_attrs
    records = (spot_dollars(attrs) or 0.0) - float(attrs.get(BASE_ATTR, 0.0))
    study.set_user_attr(BASE_ATTR, total - records)
    study.set_user_attr(COST_ATTR, total)


def interrupted_session(
    args: list[str], home, hosts, storage: str, name: str, earlier: float = 0.0
) -> tuple[str, float, list[str]]:
    """Run the launcher until its new instances run trials and its running cost is recorded, then Ctrl-C.

    ``earlier`` is the study's cost before the session: the running cost exceeds it at once (each
    instance is billed a minute at least), then stays until the instances have run that minute.
    """
    before = set(hosts.user_data)
    marks = home / f"{name}.marks"
    lines = len(marks.read_text().splitlines()) if marks.exists() else 0
    started = time.time()
    with running_cli([*args, "--executor", "aws-spot", "--wall-time", "1h"], home.parent) as proc:
        wait_for_lines(marks, lines + 2, timeout=120)
        wait_until(lambda: cost(storage, name) > earlier, 10, "the running cost recorded by the launcher")
        out = ctrl_c(proc)
    assert proc.returncode == 130, out
    return out, time.time() - started, [hosts.user_data[i] for i in set(hosts.user_data) - before]


def wall_times(scripts: list[str]) -> list[int]:
    return [int(w) for s in scripts for w in re.findall(r"--wall-time (\d+)s", s)]


def test_the_dollar_budget_is_the_studys_over_its_sessions(home, aws_stores, ec2, simulated_hosts):
    name = "spot-usd"
    spec = spot_spec(home, aws_stores, name, 400, sleep=0.3, fleet=False, budget_usd=BUDGET)
    hosts = simulated_hosts(name)
    _, seconds, scripts = interrupted_session(["optimize", str(spec)], home, hosts, aws_stores.storage, name)
    # The whole budget; a worker launched after another shares it less the other's first minute
    # (billed at launch): (2000 - 60) / 2 = 970 s.
    assert min(wall_times(scripts)) >= 965, "the first session has the whole budget"
    first = cost(aws_stores.storage, name)
    assert 0 < first <= PER_SECOND * 2 * max(seconds, MINIMUM_S), "this session's bill, counted once"

    earlier = BUDGET / 2  # as if earlier sessions had spent half of it
    spent_before(aws_stores.storage, name, earlier)
    _, seconds, scripts = interrupted_session(
        ["resume", str(spec)], home, hosts, aws_stores.storage, name, earlier
    )
    assert wall_times(scripts) and max(wall_times(scripts)) <= 500, "the share of what is left of the budget"
    bill = PER_SECOND * 2 * max(seconds, MINIMUM_S)
    assert earlier < cost(aws_stores.storage, name) <= earlier + bill, "counted once"

    spent_before(aws_stores.storage, name, BUDGET)
    launched = len(instances(ec2, name))
    proc = start_cli(["resume", str(spec), "--executor", "aws-spot", "--wall-time", "1h"], home.parent)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "stopped (dollar budget)" in out and "launching no worker" in out, out
    assert len(instances(ec2, name)) == launched, "no instance launched once the study's budget is spent"
    assert cost(aws_stores.storage, name) == pytest.approx(BUDGET)
