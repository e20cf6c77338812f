"""EC2 calls of the spot executor: prices, launches, listing and terminating by tag.

boto3 is imported lazily (the ``aws`` extra); credentials come from boto3's standard
chain only — environment, shared files, or the instance profile — and are never read,
logged or passed on by autotweak.
"""

from __future__ import annotations

import base64
import difflib
import importlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from autotweak._imports import require
from autotweak.aws._errors import AwsAccessError, AwsError, aws_errors
from autotweak.aws._prices import priced_as_money
from autotweak.spec._parts import AwsSpot

__all__ = [
    "AwsError",
    "Instance",
    "LAUNCHER_TAG",
    "Template",
    "STOPPED_TAG",
    "SPEC_REGION",
    "STUDY_TAG",
    "delete_templates",
    "ec2_client",
    "find_instances",
    "find_templates",
    "iam_client",
    "launch",
    "region_name",
    "stop_workers",
    "unknown_region",
    "workers_of",
]

_log = logging.getLogger(__name__)

STUDY_TAG = "autotweak:study"
LAUNCHER_TAG = "autotweak:launcher"
PRICE_TAG = "autotweak:price"
# Put on instances by `autotweak workers stop` before it terminates them: their launcher
# reads it and ends the study instead of replacing them.
STOPPED_TAG = "autotweak:stopped-by"
STOPPED_BY = "workers stop"
# A stopping or stopped instance runs no worker: it is not counted, not billed, and terminated.
ALIVE = ("pending", "running", "shutting-down")
_TERMINABLE = ("pending", "running", "stopping", "stopped")


@dataclass(frozen=True)
class Instance:
    """One worker instance, as EC2 describes it."""

    instance_id: str
    instance_type: str
    state: str
    launch_time: datetime
    study: str
    launcher: str
    price: float | None
    stopped_by: str | None = None
    ended: datetime | None = None  # when EC2 says it was terminated (or stopped), where it says

    @property
    def alive(self) -> bool:
        """Whether it runs (or is about to run, or still ends) a worker, and is billed."""
        return self.state in ALIVE

    @property
    def terminable(self) -> bool:
        """Whether it is neither terminated nor on its way there."""
        return self.state in _TERMINABLE


# Where a region is given, as `autotweak workers` takes it (the launcher has no --region option).
WORKERS_REGION = "pass --region (or 'execution.aws.region' in the spec)"
SPEC_REGION = "give 'execution.aws.region' in the spec"


def ec2_client(region: str | None, give: str = WORKERS_REGION) -> Any:
    """An EC2 client from boto3's default credential chain; ``give`` says how to give a missing region."""
    boto3 = require("boto3", extra="aws", feature="the aws-spot executor")
    no_region = importlib.import_module("botocore.exceptions").NoRegionError  # botocore ships no types
    try:
        return boto3.client("ec2", region_name=region)
    except no_region:
        raise AwsAccessError(
            f"no AWS region is set: {give}, or set AWS_REGION or AWS_DEFAULT_REGION."
        ) from None


def iam_client() -> Any:
    """An IAM client from boto3's default credential chain (IAM is global: no region)."""
    return require("boto3", extra="aws", feature="the aws-spot executor").client("iam")


def unknown_region(region: str) -> str:
    """Words for a region name botocore does not know, with the nearest known one; else nothing.

    Said only with an error: a region newer than the installed botocore still works.
    """
    session = require("boto3", extra="aws", feature="the aws-spot executor").session.Session()
    known = {r for p in session.get_available_partitions() for r in session.get_available_regions("ec2", p)}
    if region in known:
        return ""
    close = " or ".join(repr(c) for c in difflib.get_close_matches(region, sorted(known), n=2))
    return ", a region botocore does not know" + (f": did you mean {close}?" if close else "")


def launch(
    ec2: Any, settings: AwsSpot, count: int, user_data: str, tags: dict[str, str], prices: dict[str, float]
) -> list[str]:
    """Launch ``count`` spot instances; an instant EC2 Fleet first, else ``RunInstances``."""
    if settings.fleet:
        try:
            ids = _fleet(ec2, settings, count, user_data, tags, prices)
            if ids:
                return ids
            _log.warning("the EC2 Fleet launched no instance; falling back to spot RunInstances")
        except Exception as exc:  # botocore's ClientError, or a region without fleets
            _log.warning("EC2 Fleet failed (%s); falling back to spot RunInstances", _safe(exc))
    return _run_instances(ec2, settings, count, user_data, tags, prices)


def _instance_data(
    settings: AwsSpot, user_data: str, tags: dict[str, str], *, encode: bool
) -> dict[str, Any]:
    """Launch settings shared by the fleet's template and ``RunInstances``.

    A launch template takes user-data base64-encoded; boto3 encodes ``RunInstances``' itself.
    """
    data: dict[str, Any] = {
        "ImageId": settings.image_id,
        "UserData": base64.b64encode(user_data.encode()).decode() if encode else user_data,
        "MetadataOptions": {
            "HttpTokens": "required",
            "HttpEndpoint": "enabled",
            "HttpPutResponseHopLimit": 2,
        },
        "InstanceInitiatedShutdownBehavior": "terminate",
        "TagSpecifications": [_tag_spec("instance", tags), _tag_spec("volume", tags)],
    }
    if settings.iam_instance_profile:
        data["IamInstanceProfile"] = {"Name": settings.iam_instance_profile}
    if settings.key_name:
        data["KeyName"] = settings.key_name
    if settings.security_group_ids:
        data["SecurityGroupIds"] = list(settings.security_group_ids)
    return data


def _fleet(
    ec2: Any, settings: AwsSpot, count: int, user_data: str, tags: dict[str, str], prices: dict[str, float]
) -> list[str]:
    name = f"autotweak-{tags[LAUNCHER_TAG]}"
    data = _instance_data(settings, user_data, tags, encode=True)
    template = ec2.create_launch_template(  # tagged: one left by a kill is found (find_templates)
        LaunchTemplateName=name,
        LaunchTemplateData=data,
        TagSpecifications=[_tag_spec("launch-template", tags)],
    )
    template_id = template["LaunchTemplate"]["LaunchTemplateId"]
    overrides: list[dict[str, Any]] = []
    for kind in prices:
        override: dict[str, Any] = {"InstanceType": kind}
        if settings.subnet_id:
            override["SubnetId"] = settings.subnet_id
        if settings.max_price is not None:
            override["MaxPrice"] = f"{settings.max_price:.6f}"
        overrides.append(override)
    try:
        response = ec2.create_fleet(
            Type="instant",
            LaunchTemplateConfigs=[
                {
                    "LaunchTemplateSpecification": {"LaunchTemplateId": template_id, "Version": "$Latest"},
                    "Overrides": overrides,
                }
            ],
            TargetCapacitySpecification={"TotalTargetCapacity": count, "DefaultTargetCapacityType": "spot"},
            SpotOptions={"AllocationStrategy": "price-capacity-optimized"},
            TagSpecifications=[_tag_spec("instance", tags)],
        )
    finally:
        ec2.delete_launch_template(LaunchTemplateId=template_id)  # an instant fleet keeps nothing of it
    for error in response.get("Errors", []):
        _log.warning(
            "EC2 Fleet: %s %s", error.get("ErrorCode"), priced_as_money(str(error.get("ErrorMessage")))
        )
    ids = [i for group in response.get("Instances", []) for i in group.get("InstanceIds", [])]
    _tag_prices(ec2, ids, prices)
    return ids


def _run_instances(
    ec2: Any, settings: AwsSpot, count: int, user_data: str, tags: dict[str, str], prices: dict[str, float]
) -> list[str]:
    kind = min(prices, key=prices.__getitem__)
    spot: dict[str, Any] = {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"}
    if settings.max_price is not None:
        spot["MaxPrice"] = f"{settings.max_price:.6f}"
    extra: dict[str, Any] = {"SubnetId": settings.subnet_id} if settings.subnet_id else {}
    response = ec2.run_instances(
        **_instance_data(settings, user_data, tags, encode=False),
        **extra,
        InstanceType=kind,
        MinCount=1,
        MaxCount=count,
        InstanceMarketOptions={"MarketType": "spot", "SpotOptions": spot},
    )
    ids = [i["InstanceId"] for i in response["Instances"]]
    _tag_prices(ec2, ids, prices, kind)
    return ids


def _tag_prices(ec2: Any, ids: list[str], prices: dict[str, float], kind: str | None = None) -> None:
    """Keep each instance's hourly price at launch in a tag, for ``workers list`` and the bill."""
    if not ids:
        return
    kinds = {i.instance_id: i.instance_type for i in _describe(ec2, [{"Name": "instance-id", "Values": ids}])}
    for instance_id in ids:
        price = prices.get(kind or kinds.get(instance_id, ""), max(prices.values()))
        ec2.create_tags(Resources=[instance_id], Tags=[{"Key": PRICE_TAG, "Value": f"{price:.6g}"}])


def find_instances(ec2: Any, study: str | None = None, launcher: str | None = None) -> list[Instance]:
    """The instances autotweak launched, for one study (and launcher) or all."""
    filters = [{"Name": "tag-key", "Values": [STUDY_TAG]}]
    if study is not None:
        filters.append({"Name": f"tag:{STUDY_TAG}", "Values": [study]})
    if launcher is not None:
        filters.append({"Name": f"tag:{LAUNCHER_TAG}", "Values": [launcher]})
    return _describe(ec2, filters)


def _describe(ec2: Any, filters: list[dict[str, Any]]) -> list[Instance]:
    out: list[Instance] = []
    for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
        for reservation in page["Reservations"]:
            out.extend(_instance(raw) for raw in reservation["Instances"])
    return sorted(out, key=lambda i: (i.launch_time, i.instance_id))


def _instance(raw: dict[str, Any]) -> Instance:
    tags = {t["Key"]: t["Value"] for t in raw.get("Tags", [])}
    price = tags.get(PRICE_TAG)
    return Instance(
        instance_id=raw["InstanceId"],
        instance_type=raw["InstanceType"],
        state=raw["State"]["Name"],
        launch_time=raw["LaunchTime"],
        study=tags.get(STUDY_TAG, ""),
        launcher=tags.get(LAUNCHER_TAG, ""),
        price=None if price is None else float(price),
        stopped_by=tags.get(STOPPED_TAG),
        ended=_transition_time(raw.get("StateTransitionReason", "")),
    )


def _transition_time(reason: str) -> datetime | None:
    """The time in EC2's ``StateTransitionReason``: 'User initiated (2026-11-30 04:31:07 GMT)'."""
    found = re.search(r"\((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (?:GMT|UTC)\)", reason)
    return None if found is None else datetime.strptime(found[1], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


@dataclass(frozen=True)
class Template:
    """A launch template the launcher made for an EC2 Fleet (it deletes it after the fleet call)."""

    template_id: str
    name: str
    launcher: str


def find_templates(ec2: Any, study: str) -> list[Template]:
    """The launch templates of ``study``'s launchers still there: a launcher killed mid-launch leaves one."""
    filters = [{"Name": f"tag:{STUDY_TAG}", "Values": [study]}]
    found: list[Template] = []
    for page in ec2.get_paginator("describe_launch_templates").paginate(Filters=filters):
        for raw in page["LaunchTemplates"]:
            tags = {t["Key"]: t["Value"] for t in raw.get("Tags", [])}
            found.append(
                Template(raw["LaunchTemplateId"], raw["LaunchTemplateName"], tags.get(LAUNCHER_TAG, ""))
            )
    return found


def delete_templates(ec2: Any, templates: Iterable[Template]) -> list[str]:
    """Delete the launch templates (one deleted meanwhile is not an error); return the names deleted."""
    deleted: list[str] = []
    for template in templates:
        try:
            ec2.delete_launch_template(LaunchTemplateId=template.template_id)
            deleted.append(template.name)
        except Exception as exc:  # botocore's ClientError: deleted meanwhile, or refused
            if "NotFound" not in str(exc):
                raise
    if deleted:
        _log.info("deleted %d launch template(s) left by a launcher: %s", len(deleted), ", ".join(deleted))
    return deleted


def region_name(region: str | None) -> str:
    """The region EC2 calls go to: ``region``, or boto3's default (``AWS_DEFAULT_REGION``, the profile).

    Raises:
        AwsAccessError: If no region is given or configured.
    """
    with aws_errors("finding the AWS region"):
        return str(ec2_client(region).meta.region_name)


def workers_of(region: str | None, study: str | None, *, show_all: bool = False) -> list[Instance]:
    """The worker instances of ``study`` (or of every study), alive ones unless ``show_all``.

    Raises:
        AwsError: If EC2 cannot be reached or refuses the call (one line: what and how to fix).
    """
    with aws_errors("listing the worker instances"):
        return [i for i in find_instances(ec2_client(region), study) if show_all or i.alive or i.terminable]


def stop_workers(region: str | None, study: str) -> list[str]:
    """Terminate the worker instances of ``study``; their launcher ends the study rather than replace them.

    Each instance is tagged ``autotweak:stopped-by`` before it is terminated: a launcher
    still running reads the tag, launches nothing more, and ends the study (stop reason
    ``workers stop``).

    Raises:
        AwsError: If EC2 cannot be reached or refuses the call (one line: what and how to fix).

    Example:
        >>> stop_workers("us-east-1", "digits-mlp")  # doctest: +SKIP
        ['i-0123456789abcdef0']
    """
    with aws_errors(f"stopping the workers of study '{study}'"):
        ec2 = ec2_client(region)
        live = [i for i in find_instances(ec2, study) if i.terminable]
        if live:
            ids = [i.instance_id for i in live]
            ec2.create_tags(Resources=ids, Tags=[{"Key": STOPPED_TAG, "Value": STOPPED_BY}])
        return terminate(ec2, live)


def terminate(ec2: Any, instances: Iterable[Instance]) -> list[str]:
    """Terminate the instances that are not terminated yet; return their ids."""
    ids = [i.instance_id for i in instances if i.terminable]
    if ids:
        ec2.terminate_instances(InstanceIds=ids)
        _log.info("terminated %d instance(s): %s", len(ids), ", ".join(ids))
    return ids


def _tag_spec(resource: str, tags: dict[str, str]) -> dict[str, Any]:
    return {"ResourceType": resource, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}


def _safe(exc: BaseException) -> str:
    """An error's class and message (boto3 messages hold no credentials), prices as money."""
    return f"{type(exc).__name__}: {priced_as_money(str(exc))}"
