"""The small value objects of an experiment: metric, budget, components, execution."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from autotweak._validation import (
    Problems,
    Where,
    as_bool,
    as_float,
    as_int,
    as_mapping,
    as_name,
    as_str,
    check_keys,
)

__all__ = ["AwsSpot", "Budget", "Component", "Execution", "Metric", "parse_duration"]

_log = logging.getLogger(__name__)

Direction = Literal["maximize", "minimize"]

# Words of a metric's name that say which way is better, for a direction that reads wrong.
_BETTER_LOW = frozenset(
    ["loss", "error", "err", "mse", "rmse", "mae", "nll", "perplexity", "ppl", "wer", "cer", "regret"]
)
_BETTER_HIGH = frozenset(["acc", "accuracy", "auc", "f1", "precision", "recall", "r2", "bleu", "iou", "dice"])
_NEGATED = frozenset(("neg", "negative", "minus"))


@dataclass(frozen=True)
class Metric:
    """The metric the objective returns (and reports per step) and which way is better.

    Attributes:
        name: Metric name, used for the MLflow metric and the report.
        direction: ``"maximize"`` or ``"minimize"``.
        steps: Report steps in one full training (epochs, say), counted from 1; sets
            Hyperband's ``max_resource``, the compute accounting, and the step from which
            no pruner stops a trial (it has trained in full; ``steps - 1`` for a trial
            that reported step 0 first). Unknown when ``None``.
    """

    name: str
    direction: Direction
    steps: int | None = None

    def __post_init__(self) -> None:
        where = Where(None, "metric")
        as_name(self.name, where.child("name"))
        as_str(self.direction, where.child("direction"), choices=("maximize", "minimize"))
        if self.steps is not None:
            as_int(self.steps, where.child("steps"), minimum=1)

    @property
    def direction_doubt(self) -> str | None:
        """Why ``direction`` reads wrong for the metric's name (``val_loss`` maximized), else ``None``.

        Only a word of the name that says which way is better counts (``loss``, ``accuracy``);
        a negated name (``neg_loss``) or one of your own says nothing.

        Example:
            >>> Metric("val_loss", "maximize").direction_doubt
            "'val_loss' reads as a metric to minimize (loss)"
        """
        words = re.split(r"[^a-z0-9]+", self.name.lower())
        if any(word in _NEGATED for word in words):
            return None
        wrong = _BETTER_HIGH if self.direction == "minimize" else _BETTER_LOW
        said = next((word for word in words if word in wrong), None)
        if said is None:
            return None
        other = "maximize" if self.direction == "minimize" else "minimize"
        return f"'{self.name}' reads as a metric to {other} ({said})"

    @classmethod
    def parse(cls, raw: Any, where: Where) -> Metric:
        data = as_mapping(raw, where)
        check_keys(data, where, allowed=("name", "direction", "steps"), required=("name", "direction"))
        steps = data.get("steps")
        problems = Problems()  # name, direction and steps are checked apart: all are said at once
        values: dict[str, Any] = {}
        with problems.collect():
            values["name"] = as_name(data["name"], where.child("name"))
        with problems.collect():
            values["direction"] = as_str(
                data["direction"], where.child("direction"), choices=("maximize", "minimize")
            )
        with problems.collect():
            values["steps"] = None if steps is None else as_int(steps, where.child("steps"), minimum=1)
        problems.raise_any(where.source)
        return cls(**values)


@dataclass(frozen=True)
class Budget:
    """When to stop asking for trials; the first limit reached ends the study.

    A limit stops new trials from starting; running trials finish, so ``wall_time`` and
    ``compute`` may be passed by up to one trial per worker.

    Attributes:
        trials: Total trials of the study (all workers, all sessions, retries excluded).
        wall_time: Seconds from the start of this session (``optimize`` or ``resume``),
            worker start-up included.
        compute: Total compute of the study in full-training equivalents (a trial pruned
            at half its steps costs 0.5); needs ``metric.steps``.
    """

    trials: int | None = 20
    wall_time: float | None = None
    compute: float | None = None

    def __post_init__(self) -> None:
        where = Where(None, "budget")
        if self.trials is None and self.wall_time is None and self.compute is None:
            raise where.fail("must set at least one of trials, wall_time, compute")
        if self.trials is not None:
            as_int(self.trials, where.child("trials"), minimum=1)
        if self.wall_time is not None:
            as_float(self.wall_time, where.child("wall_time"), minimum=0, strict_minimum=True)
        if self.compute is not None:
            as_float(self.compute, where.child("compute"), minimum=0, strict_minimum=True)

    @classmethod
    def parse(cls, raw: Any, where: Where) -> Budget:
        data = as_mapping(raw, where)
        check_keys(data, where, allowed=("trials", "wall_time", "compute"))
        if not data:
            raise where.fail("must set at least one of trials, wall_time, compute", dict(data))
        trials = data.get("trials")
        wall = data.get("wall_time")
        compute = data.get("compute")
        return cls(
            trials=None if trials is None else as_int(trials, where.child("trials"), minimum=1),
            wall_time=None if wall is None else parse_duration(wall, where.child("wall_time")),
            compute=None
            if compute is None
            else as_float(compute, where.child("compute"), minimum=0, strict_minimum=True),
        )


@dataclass(frozen=True)
class Component:
    """A sampler or pruner chosen by registry name, with keyword arguments."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Any, where: Where, *, choices: tuple[str, ...]) -> Component:
        if isinstance(raw, str):
            return cls(as_str(raw, where, choices=choices))
        if not isinstance(raw, Mapping):
            raise where.fail(
                f"must be a name ({', '.join(choices)}) or a mapping {{name: ..., args: {{...}}}}", raw
            )
        data = as_mapping(raw, where)
        check_keys(data, where, allowed=("name", "args"), required=("name",))
        args = as_mapping(data.get("args") or {}, where.child("args"))
        return cls(as_str(data["name"], where.child("name"), choices=choices), dict(args))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "args": dict(self.args)}


@dataclass(frozen=True)
class Execution:
    """How trials run: worker processes and the failure detection of the shared storage.

    Attributes:
        workers: Local worker processes (1 runs trials in this process).
        heartbeat_interval: Seconds between a running trial's heartbeats.
        grace_period: Seconds without a heartbeat after which a trial is stale: it is
            marked failed and run again. Greater than ``heartbeat_interval``; under twice it,
            one late heartbeat fails a live trial (a warning says so).
        max_retries: How many times a stale trial is run again.
        aws: Settings of the ``aws-spot`` executor, as validated plain data (see
            :class:`AwsSpot`); ``None`` when the study never runs on EC2.
    """

    workers: int = 1
    heartbeat_interval: int = 5
    grace_period: int = 20
    max_retries: int = 2
    aws: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        where = Where(None, "execution")
        as_int(self.workers, where.child("workers"), minimum=1)
        as_int(self.heartbeat_interval, where.child("heartbeat_interval"), minimum=1)
        as_int(self.grace_period, where.child("grace_period"), minimum=1)
        as_int(self.max_retries, where.child("max_retries"), minimum=0)
        if self.grace_period <= self.heartbeat_interval:
            raise where.child("grace_period").fail(
                f"must be greater than heartbeat_interval ({self.heartbeat_interval}); at least twice "
                f"it ({2 * self.heartbeat_interval}) is safe",
                self.grace_period,
            )
        if self.grace_period < 2 * self.heartbeat_interval:
            _warn_short_grace(self.heartbeat_interval, self.grace_period)
        if self.aws is not None:
            AwsSpot.parse(self.aws, where.child("aws"))

    @classmethod
    def parse(cls, raw: Any, where: Where) -> Execution:
        data = as_mapping(raw, where)
        keys = ("workers", "heartbeat_interval", "grace_period", "max_retries")
        check_keys(data, where, allowed=(*keys, "aws"))
        minimum = {"max_retries": 0}
        values: dict[str, Any] = {
            k: as_int(data[k], where.child(k), minimum=minimum.get(k, 1)) for k in keys if k in data
        }
        if data.get("aws") is not None:
            values["aws"] = AwsSpot.parse(data["aws"], where.child("aws")).to_dict()
        return cls(**values)


_AWS_REQUIRED = ("image_id", "instance_types")
_AWS_OPTIONAL = (
    "region",
    "max_price",
    "budget_usd",
    "iam_instance_profile",
    "subnet_id",
    "security_group_ids",
    "key_name",
    "install",
    "fleet",
    "poll_interval",
)
DEFAULT_INSTALL = "python3 -m pip install 'autotweak[aws,postgres]'"


_AWS_MISSING = (
    "is required by the aws-spot executor: add at least `aws: {image_id: ami-0123456789abcdef0, "
    "instance_types: [g4dn.xlarge]}` under `execution:` (your AMI, with Python >= 3.11; every field and "
    "the stores the instances need: README.md, section 'From laptop to spot GPUs')"
)

_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")


@dataclass(frozen=True)
class AwsSpot:
    """Where and how the ``aws-spot`` executor launches its workers (``execution.aws``).

    Attributes:
        image_id: The AMI the workers boot (with Python 3.11+ and, for GPUs, drivers).
        instance_types: Instance types to choose from, cheapest capacity first.
        region: AWS region (else the boto3 default chain's).
        max_price: Highest spot price paid per instance-hour, in US dollars.
        budget_usd: Total dollars the study's instances may cost; once spent, no instance
            is launched and the running ones are terminated.
        iam_instance_profile: Instance profile whose role gives workers their AWS
            credentials (S3 artifacts); keys never travel in user-data.
        subnet_id: Subnet to launch into (else the default VPC's).
        security_group_ids: Security groups of the workers.
        key_name: SSH key pair, for debugging.
        install: Shell command the bootstrap runs to install the project.
        fleet: Launch with an instant EC2 Fleet (else spot ``RunInstances``).
        poll_interval: Seconds between the launcher's checks of instances and budget.
    """

    image_id: str
    instance_types: tuple[str, ...]
    region: str | None = None
    max_price: float | None = None
    budget_usd: float | None = None
    iam_instance_profile: str | None = None
    subnet_id: str | None = None
    security_group_ids: tuple[str, ...] = ()
    key_name: str | None = None
    install: str = DEFAULT_INSTALL
    fleet: bool = True
    poll_interval: float = 10.0

    @classmethod
    def parse(cls, raw: Any, where: Where) -> AwsSpot:
        """Validate the ``execution.aws`` mapping."""
        data = as_mapping(raw, where)
        check_keys(data, where, allowed=(*_AWS_REQUIRED, *_AWS_OPTIONAL), required=_AWS_REQUIRED)
        values: dict[str, Any] = {
            "image_id": as_str(data["image_id"], where.child("image_id")),
            "instance_types": _str_list(data["instance_types"], where.child("instance_types"), minimum=1),
            "security_group_ids": _str_list(
                data.get("security_group_ids", []), where.child("security_group_ids"), minimum=0
            ),
        }
        for key in ("region", "iam_instance_profile", "subnet_id", "key_name", "install"):
            if data.get(key) is not None:
                values[key] = as_str(data[key], where.child(key))
        if "region" in values and not _REGION.fullmatch(values["region"]):
            raise where.child("region").fail(
                "must be an AWS region name such as 'us-east-1'", values["region"]
            )
        for key in ("max_price", "budget_usd", "poll_interval"):
            if data.get(key) is not None:
                values[key] = as_float(data[key], where.child(key), minimum=0, strict_minimum=True)
        if "fleet" in data:
            values["fleet"] = as_bool(data["fleet"], where.child("fleet"))
        return cls(**values)

    @classmethod
    def of(cls, execution: Execution, where: Where) -> AwsSpot:
        """The settings of ``execution``, or an error naming the missing section."""
        if execution.aws is None:
            raise where.fail(_AWS_MISSING)
        return cls.parse(execution.aws, where)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, not tuples), as kept in the study's spec."""
        out = dict(vars(self))
        out["instance_types"] = list(self.instance_types)
        out["security_group_ids"] = list(self.security_group_ids)
        return out


def _str_list(raw: Any, where: Where, *, minimum: int) -> tuple[str, ...]:
    if isinstance(raw, str) or not isinstance(raw, list | tuple) or len(raw) < minimum:
        raise where.fail(f"must be a list of at least {minimum} string(s)", raw)
    return tuple(as_str(item, where.child(i)) for i, item in enumerate(raw))


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(raw: Any, where: Where) -> float:
    """Seconds from a number or a string such as ``"90s"``, ``"10m"``, ``"1.5h"``."""
    if isinstance(raw, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smhd]?)\s*", raw)
        if not match:
            raise where.fail('must be seconds or a duration such as "90s", "10m", "2h"', raw)
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
        return as_float(seconds, where, minimum=0, strict_minimum=True)
    return as_float(raw, where, minimum=0, strict_minimum=True)


@functools.cache  # once per process and setting: every process of a study reads its spec
def _warn_short_grace(heartbeat_interval: int, grace_period: int) -> None:
    """Warn of a grace period under twice the heartbeat interval: one late heartbeat fails a live trial."""
    _log.warning(
        "execution.grace_period %d is under twice heartbeat_interval (2 x %d = %d): a heartbeat that "
        "comes one interval late (a write retried through a short storage outage, a busy storage) fails "
        "its live trial as lost (it is run again); %d or more is safe",
        grace_period,
        heartbeat_interval,
        2 * heartbeat_interval,
        2 * heartbeat_interval,
    )
