"""The ``aws-spot`` executor: the launcher that keeps N spot workers on the study, within budget.

The launcher runs where ``autotweak optimize`` runs. It launches workers (an instant EC2
Fleet, else spot ``RunInstances``), replaces lost ones while the study and the dollar
budget last, fails the trials of vanished workers through the heartbeat (also those that
never beat: a machine lost before its trial's first heartbeat), and, however it
ends, terminates every instance it launched: in a ``finally`` block, and through a
detached :class:`~autotweak.aws._watchdog.Watchdog` when it is killed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from autotweak._money import usd, usd_per_hour
from autotweak._validation import Where
from autotweak.aws._bill import LauncherBill
from autotweak.aws._cost import PriceBound, StudyCost
from autotweak.aws._ec2 import (
    LAUNCHER_TAG,
    SPEC_REGION,
    STOPPED_BY,
    STUDY_TAG,
    Instance,
    ec2_client,
    find_instances,
    iam_client,
    launch,
    terminate,
    unknown_region,
)
from autotweak.aws._errors import aws_errors
from autotweak.aws._launch_checks import check_image, check_network, check_profile
from autotweak.aws._prices import priced_as_money, priced_types
from autotweak.aws._userdata import Bootstrap, check_reachable, user_data
from autotweak.aws._watchdog import Watchdog
from autotweak.engine._budget import BudgetView
from autotweak.engine._executors import BaseExecutor
from autotweak.engine._lost_retries import unqueued
from autotweak.engine._stale import StaleSweeper
from autotweak.engine._storage import make_storage
from autotweak.engine._study import ATTR
from autotweak.engine._unreachable import retrying
from autotweak.engine._worker import WorkerContext, WorkerResult, make_stale_handler, make_tracker
from autotweak.exceptions import AutotweakError
from autotweak.spec import Experiment
from autotweak.spec._parts import AwsSpot

__all__ = ["SpotExecutor"]

_log = logging.getLogger(__name__)

_RESERVE = 0.1  # no instance is launched into the last tenth of the dollar budget


class SpotExecutor(BaseExecutor):
    """Runs ``workers`` ``autotweak worker`` processes on EC2 spot instances.

    The settings come from the spec's ``execution.aws`` section. The stores must be
    servers the instances reach (PostgreSQL, an MLflow tracking server).

    Example:
        >>> optimize("exp.yaml", executor=SpotExecutor(workers=8))  # doctest: +SKIP
    """

    detached = True  # run() returns while the workers of its terminated instances shut down

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.cost: StudyCost | None = None  # after run(): this session's and the study's dollars

    @property
    def meta(self) -> dict[str, Any]:
        return {"name": "aws-spot", "workers": self.workers}

    def check_objective(self, objective: Callable[..., Any] | None) -> None:
        """Workers import the objective on their instances: a Python callable cannot reach them."""
        if objective is not None:
            raise AutotweakError(
                "'objective' must be an importable 'module:function' or 'file.py:function' for the "
                "aws-spot executor (workers import it on their instances), got a Python callable."
            )

    def check_setup(self, experiment: Experiment, storage_url: str, tracking_uri: str | None) -> None:
        """Refuse a bad ``execution.aws`` section, stores EC2 workers cannot reach, and an unusable AWS.

        AWS is asked for the spot prices of the instance types, the image, the instance
        profile, the subnet (or the default VPC), the security groups and the key pair: missing
        credentials, an unreachable endpoint, an unknown instance type, and an image, instance
        profile, subnet, security group or key pair that AWS does not have (or a group of another
        VPC than the instances', or no subnet where the region has no default VPC) are refused
        before the study exists.
        """
        settings = _settings(experiment)
        check_reachable(storage_url, tracking_uri)
        with aws_errors("the aws-spot executor (reading spot prices)"):
            ec2 = ec2_client(settings.region, SPEC_REGION)
        region = ec2.meta.region_name
        with aws_errors(
            f"the aws-spot executor (reading spot prices in region {region}{unknown_region(region)})"
        ):
            priced_types(ec2, settings)
        with aws_errors(f"the aws-spot executor (describing image {settings.image_id})"):
            check_image(ec2, settings.image_id)
        if settings.iam_instance_profile:
            with aws_errors(
                f"the aws-spot executor (reading instance profile {settings.iam_instance_profile})"
            ):
                check_profile(iam_client(), settings.iam_instance_profile)
        with aws_errors("the aws-spot executor (describing the subnet, security groups and key pair)"):
            check_network(ec2, settings)

    def run(self, ctx: WorkerContext, objective: Callable[..., Any] | None) -> list[WorkerResult]:
        self.check_objective(objective)  # checked before the study exists too; run() may be called alone
        self.check_setup(ctx.experiment, ctx.storage_url, ctx.tracking_uri)
        launcher = _Launcher(ctx, _settings(ctx.experiment), self.workers)
        try:
            return [launcher.run()]
        finally:
            self.cost = launcher.cost


def _settings(experiment: Experiment) -> AwsSpot:
    return AwsSpot.of(experiment.execution, Where(experiment.source, "execution.aws"))


class _Launcher:
    def __init__(self, ctx: WorkerContext, settings: AwsSpot, workers: int) -> None:
        self.ctx = ctx
        self.settings = settings
        self.workers = workers
        self.study_name = ctx.experiment.name
        self.id = uuid.uuid4().hex[:12]
        self.tags = {
            STUDY_TAG: self.study_name,
            LAUNCHER_TAG: self.id,
            "Name": f"autotweak-{self.study_name}",
        }
        self.ec2 = ec2_client(settings.region, SPEC_REGION)
        self.launches = 0
        self.failed_launches = 0
        self.stopped_at: float | None = None  # when `workers stop` was seen
        execution = ctx.experiment.execution
        tracker = make_tracker(ctx.tracking_uri)
        storage = make_storage(
            ctx.storage_url,
            heartbeat_interval=execution.heartbeat_interval,
            grace_period=execution.grace_period,
            on_stale=make_stale_handler(tracker, ctx.experiment),
        )
        self.study = optuna.load_study(study_name=self.study_name, storage=storage)
        # Orphans too (trials that never beat): a machine lost before its trial's first heartbeat
        # may leave the study's last trial so, with no worker left to sweep it.
        self.sweep = StaleSweeper(self.study, every=0.0)
        self.bill = LauncherBill(self.ec2, self.study, self.id, settings.poll_interval)
        self.cost = StudyCost(0.0, self.bill.earlier)

    def run(self) -> WorkerResult:
        with aws_errors("the aws-spot launcher"):
            prices = priced_types(self.ec2, self.settings)
        # For a launch cut before its tags (this launcher's, or a killed one's).
        self.bill.ledger.bound = PriceBound(prices, self.settings.max_price)
        self.bill.settle(time.time())  # what killed launchers left: counted in the budget
        if self._dollars_left(time.time()) <= 0:
            _log.warning(
                "the dollar budget of %s is spent: study '%s' cost %s in earlier sessions; "
                "launching no worker (raise 'execution.aws.budget_usd' to go on)",
                usd(self.settings.budget_usd or 0.0),
                self.study_name,
                usd(self.bill.earlier),
            )
            self.cost = self.bill.cost()
            return WorkerResult(trials=0, stop_reason="dollar budget")
        shown = ", ".join(f"{kind} {usd_per_hour(price)}" for kind, price in prices.items())
        _log.info("spot prices: %s (launcher %s)", shown, self.id)
        # Before any launch: by this record, a later session tells whether this launcher was killed.
        self.bill.keep(time.time())
        log_path = Path(self.ctx.home) / "aws" / f"watchdog-{self.id}.log"
        watchdog = Watchdog(self.id, self.study_name, self.settings.region, log_path)
        interrupted = False
        try:
            with aws_errors("the aws-spot launcher"):
                reason = self._loop(prices)
            return WorkerResult(trials=self._finished(), stop_reason=reason)
        except KeyboardInterrupt:  # Ctrl-C: a study closed as interrupted, to resume, as other executors do
            _log.warning("interrupted: terminating the study's instances")
            interrupted = True
            return WorkerResult(trials=self._finished(), stop_reason="interrupted", interrupted=True)
        finally:
            self._terminate_all()
            if interrupted:
                self._await_closes()
            watchdog.close()
            self.cost = self.bill.close(self.ctx, time.time())

    def _loop(self, prices: dict[str, float]) -> str:
        experiment = self.ctx.experiment
        while True:
            now = time.time()
            instances = self.bill.poll(now)
            retrying(self.sweep, "looking for stale trials")
            view = retrying(
                lambda: BudgetView.read(self.study, experiment.metric.steps, need_compute=True),
                "reading the budget",
            )
            done = view.exhausted(experiment.budget, self.ctx.deadline)
            stopped_at = self._stopped_at(instances, now)
            if stopped_at is not None:  # wait for their trials to be queued again, within a bound
                settled = view.running == 0 and not self._owed_retries()
                if settled or now > stopped_at + self._requeue_wait():
                    return STOPPED_BY
                time.sleep(self.settings.poll_interval)
                continue
            if done and view.running == 0:
                return done
            left = self._dollars_left(now)
            if left <= 0:
                budget = self.settings.budget_usd
                _log.warning("the dollar budget of %s is spent; stopping the workers", usd(budget or 0.0))
                return "dollar budget"
            self._terminate_stopped(instances)
            alive = sum(1 for i in instances if i.alive)
            if done is None and alive < self.workers:
                if self.settings.budget_usd is None or left >= _RESERVE * self.settings.budget_usd:
                    self._try_launch(self.workers - alive, prices, now, alive)
                elif alive == 0:
                    return "dollar budget"  # what is left would not pay for a useful worker
            time.sleep(self.settings.poll_interval)

    def _terminate_stopped(self, instances: list[Instance]) -> None:
        """A stopped spot worker does no work: terminate it (the next poll sees it gone, and replaces it)."""
        stopped = [i for i in instances if i.state in ("stopping", "stopped")]
        if stopped:
            ids = ", ".join(i.instance_id for i in stopped)
            _log.warning("instance(s) %s stopped: they run no worker; terminating them", ids)
            terminate(self.ec2, stopped)

    def _stopped_at(self, instances: list[Instance], now: float) -> float | None:
        """When ``autotweak workers stop`` was seen to terminate this launcher's instances (their tag)."""
        if self.stopped_at is None and any(i.stopped_by for i in instances):
            self.stopped_at = now
            _log.warning(
                "`autotweak workers stop` terminated the instances of study '%s': launching no more; "
                "their running trials are queued again, and `autotweak resume %s --executor aws-spot` "
                "continues the study",
                self.study_name,
                self.study_name,
            )
        return self.stopped_at

    def _owed_retries(self) -> bool:
        """Whether a trial the stop cut short is not queued again yet.

        A worker tells its trial interrupted first, then keeps its checkpoint and queues it:
        a launcher gone in between would report a study whose retries are not there yet.
        """
        trials = self.study.get_trials(deepcopy=False)
        return bool(unqueued(trials, self.ctx.experiment.execution.max_retries))

    def _unsettled(self) -> int:
        """How many of this session's trials run, or were cut short and are not queued again yet.

        This session's: a worker that joined from elsewhere goes on running its trial. A trial
        not marked with a session yet (just asked) may be ours.
        """
        session = self.ctx.session
        trials = retrying(lambda: self.study.get_trials(deepcopy=False), "reading the trials")
        ours = [t for t in trials if t.user_attrs.get(ATTR.SESSION, session) == session]
        running = sum(t.state == TrialState.RUNNING for t in ours)
        return running + len(unqueued(trials, self.ctx.experiment.execution.max_retries, among=ours))

    def _await_closes(self) -> None:
        """After Ctrl-C, wait (bounded) for the workers of the terminated instances to close their trials.

        An instance's OS stops its worker as it shuts down (seconds after the termination): the
        worker tells its trial interrupted and queues it again. The study's summary, written when
        this returns, counted those trials running, where a moment later they were queued again.
        A worker killed outright leaves its trial to the heartbeat, which this sweep fails and
        queues within the bound. A second Ctrl-C ends the wait, and says what is left to happen.
        """
        left = self._unsettled()
        if not left:
            return
        bound = self._requeue_wait()
        _log.warning(
            "waiting up to %.0f s for the workers of the terminated instances to close their %d trial(s) "
            "and queue them again, so that the summary counts them as they will be "
            "(Ctrl-C again: not to wait)",
            bound,
            left,
        )
        deadline = time.monotonic() + bound
        try:
            while left and time.monotonic() < deadline:
                time.sleep(min(self.settings.poll_interval, 1.0))
                retrying(self.sweep, "looking for stale trials")
                self.bill.keep(time.time())  # alive: no later session takes this launcher for killed
                left = self._unsettled()
        except KeyboardInterrupt:
            pass
        if left:
            _log.warning(
                "%d trial(s) of the terminated instances are not closed yet: the summary counts them as "
                "running; their workers queue them again as the instances shut down (or the heartbeat, "
                "after 'execution.grace_period', at the study's next start)",
                left,
            )

    def _requeue_wait(self) -> float:
        """How long the stopped workers (or the heartbeat, for one killed) may take to queue their trials."""
        execution = self.ctx.experiment.execution
        return execution.grace_period + execution.heartbeat_interval + 2 * self.settings.poll_interval

    def _dollars_left(self, now: float) -> float:
        budget = self.settings.budget_usd
        return float("inf") if budget is None else budget - self.bill.total(now)

    def _try_launch(self, count: int, prices: dict[str, float], now: float, alive: int) -> None:
        """Launch; a refusal (no capacity, a price above max_price) is retried at the next poll."""
        try:
            self._launch(count, prices, now)
            self.failed_launches = 0
        except AutotweakError:
            raise
        except Exception as exc:  # botocore's ClientError: capacity, limits, permissions
            self.failed_launches += 1
            said = f"{type(exc).__name__}: {priced_as_money(str(exc))}"
            _log.warning("could not launch %d instance(s): %s", count, said)
            if alive == 0 and self.failed_launches >= 3:
                raise AutotweakError(f"EC2 launched no worker in 3 tries; the last error was {said}") from exc

    def _launch(self, count: int, prices: dict[str, float], now: float) -> None:
        if self.launches >= 3 * self.workers:
            raise AutotweakError(
                f"workers keep vanishing: {self.launches} instances launched for {self.workers} worker(s); "
                "see /var/log/autotweak-worker.log on an instance (or the spot interruption rate)."
            )
        boot = Bootstrap(
            study=self.study_name,
            storage=self.ctx.storage_url,
            tracking_uri=self.ctx.tracking_uri,
            install=self.settings.install,
            wall_time=self._wall_time(count, max(prices.values()), now),
            session=self.ctx.session,
        )
        ids = launch(self.ec2, self.settings, count, user_data(boot), self.tags, prices)
        self.launches += len(ids)
        _log.info(
            "launched %d spot instance(s): %s; their workers join the study once the instances have booted "
            "and installed the project (minutes; `autotweak workers list %s` shows them)",
            len(ids),
            ", ".join(ids),
            self.study_name,
        )

    def _wall_time(self, count: int, price: float, now: float) -> float | None:
        """How long a new worker may take trials: its share of the dollars left, and the study's wall time."""
        limits: list[float] = []
        if self.ctx.deadline is not None:
            limits.append(self.ctx.deadline - now)
        if self.settings.budget_usd is not None:
            left = self._dollars_left(now)
            running = self.bill.ledger.hourly_rate()
            limits.append(3600.0 * left / (running + count * price))
        return min(limits) if limits else None

    def _terminate_all(self) -> None:
        try:
            terminate(self.ec2, find_instances(self.ec2, self.study_name, self.id))
        except Exception as exc:  # the watchdog retries once the launcher is gone
            _log.error("could not terminate the study's instances (%s); the watchdog will", exc)

    def _finished(self) -> int:
        return sum(1 for t in self.study.get_trials(deepcopy=False) if t.state.is_finished())
