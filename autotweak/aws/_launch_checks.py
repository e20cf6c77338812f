"""What a launch names, checked before the study exists: AMI, instance profile, network, key pair.

Without these checks, EC2 refuses each launch after the study is created (a typo, another
region's AMI, subnet or key pair, a security group of another VPC, no subnet in a region
without a default VPC), and the launcher gives up only after three tries at its poll
interval. Each check needs a read permission that is optional: without it, the first launch
checks, and a line says which check was not made.
"""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from autotweak.aws._errors import AwsError
from autotweak.spec._parts import AwsSpot

__all__ = ["check_image", "check_network", "check_profile", "refused", "say_refused"]

_log = logging.getLogger(__name__)

# Codes of an image id EC2 does not have (or cannot launch) in the client's region.
_NOT_AN_IMAGE = ("InvalidAMIID.NotFound", "InvalidAMIID.Malformed", "InvalidAMIID.Unavailable")
# Codes of an instance profile name IAM does not have (ValidationError: an ARN, say).
_NOT_A_PROFILE = ("NoSuchEntity", "ValidationError")
_NOT_A_SUBNET = ("InvalidSubnetID.NotFound", "InvalidSubnetID.Malformed")
# InvalidGroupId.Malformed: a group's name given for its id, say.
_NOT_A_GROUP = ("InvalidGroup.NotFound", "InvalidGroupId.Malformed", "InvalidGroupId.NotFound")
_NOT_A_KEY = ("InvalidKeyPair.NotFound",)
# How alike a name must be to an existing one to be offered in its place (a typo, not a stranger).
_NEAR = 0.75
_MAX_NEAR = 3


def check_image(ec2: Any, image_id: str) -> None:
    """Refuse an ``image_id`` that EC2 does not describe in the client's region.

    Raises:
        AwsError: If EC2 has no such image in the region (naming the field, the region and the id).
    """
    region = ec2.meta.region_name
    _, why = _found(
        lambda: ec2.describe_images(ImageIds=[image_id])["Images"], _NOT_AN_IMAGE, "'execution.aws.image_id'"
    )
    if why is not None:
        raise AwsError(
            f"'execution.aws.image_id' must be an AMI of region {region} that this account can launch "
            "(an AMI belongs to one region: copy it, or set 'execution.aws.region'), "
            f"got {image_id!r}{why}."
        )


def check_profile(iam: Any, name: str) -> None:
    """Refuse an ``iam_instance_profile`` that IAM does not have.

    Raises:
        AwsError: If the account has no instance profile of that name.
    """
    _, why = _found(
        lambda: [iam.get_instance_profile(InstanceProfileName=name)],
        _NOT_A_PROFILE,
        "'execution.aws.iam_instance_profile'",
    )
    if why is not None:
        raise AwsError(
            "'execution.aws.iam_instance_profile' must be the name of an instance profile of this account "
            f"(`aws iam list-instance-profiles`), got {name!r}{why}."
        )


def check_network(ec2: Any, settings: AwsSpot) -> None:
    """Refuse a ``subnet_id``, ``security_group_ids`` or ``key_name`` the region does not have.

    The security groups must also belong to the VPC the instances launch into: the subnet's,
    else the default VPC's. Without ``subnet_id``, the region must have a default VPC: EC2
    launches there, and refuses every launch of an account that has none.

    Raises:
        AwsError: Naming the field, the region and the value, with the nearest existing ones.
    """
    groups = settings.security_group_ids
    vpc = _subnet_vpc(ec2, settings.subnet_id) if settings.subnet_id else _default_vpc(ec2)
    for group_id in groups:
        _check_group(ec2, group_id, vpc)
    if settings.key_name:
        _check_key(ec2, settings.key_name)


def _subnet_vpc(ec2: Any, subnet_id: str) -> tuple[str, str] | None:
    """The subnet's VPC and the words naming it, or ``None`` where EC2 may not be asked."""
    found, why = _found(
        lambda: ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"],
        _NOT_A_SUBNET,
        "'execution.aws.subnet_id'",
    )
    if why is not None:
        subnets = _listed(lambda: ec2.describe_subnets()["Subnets"])
        near = _nearest(subnet_id, {s["SubnetId"]: repr(s["SubnetId"]) for s in subnets})
        raise AwsError(
            f"'execution.aws.subnet_id' must be a subnet of region {ec2.meta.region_name} "
            f"(`aws ec2 describe-subnets`), got {subnet_id!r}{why}{near}"
        )
    return (found[0]["VpcId"], f"the VPC of subnet {subnet_id}") if found else None


def _default_vpc(ec2: Any) -> tuple[str, str] | None:
    """The default VPC (where a launch without a subnet goes), or ``None`` where EC2 may not be asked.

    Raises:
        AwsError: If the region has no default VPC, where EC2 refuses a launch that names no subnet.
    """
    vpcs, why = _found(
        lambda: ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"],
        (),
        "that the region has a default VPC (instances launch there without 'execution.aws.subnet_id')",
    )
    if why is not None:
        region = ec2.meta.region_name
        others = [s["SubnetId"] for s in _listed(lambda: ec2.describe_subnets()["Subnets"])]
        shown = f"; the region's subnets: {', '.join(repr(s) for s in others[:_MAX_NEAR])}" if others else ""
        raise AwsError(
            f"'execution.aws.subnet_id' is required in region {region}: this account has no default VPC "
            "there, and EC2 refuses a launch that names no subnet; set it to a subnet of one of its VPCs "
            f"(`aws ec2 describe-subnets --region {region}`){shown}."
        )
    where = "the default VPC, where instances launch without 'execution.aws.subnet_id'"
    return (vpcs[0]["VpcId"], where) if vpcs else None


def _check_group(ec2: Any, group_id: str, vpc: tuple[str, str] | None) -> None:
    """Refuse a security group the region does not have, or one of another VPC than ``vpc``."""
    found, why = _found(
        lambda: ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"],
        _NOT_A_GROUP,
        "'execution.aws.security_group_ids'",
    )
    if why is not None:
        groups = _listed(lambda: ec2.describe_security_groups()["SecurityGroups"])
        ids = {g["GroupId"]: repr(g["GroupId"]) for g in groups}
        names = {g["GroupName"]: f"{g['GroupId']!r} (group {g['GroupName']!r})" for g in groups}
        raise AwsError(
            f"'execution.aws.security_group_ids' must hold ids of security groups of region "
            f"{ec2.meta.region_name} (`aws ec2 describe-security-groups`; an id, not a name), "
            f"got {group_id!r}{why}{_nearest(group_id, {**names, **ids})}"
        )
    if found and vpc is not None and found[0]["VpcId"] != vpc[0]:
        raise AwsError(
            "'execution.aws.security_group_ids' must hold groups of the VPC the instances launch into "
            f"({vpc[0]}, {vpc[1]}): EC2 refuses a group of another VPC, "
            f"got {group_id!r} of {found[0]['VpcId']}."
        )


def _check_key(ec2: Any, name: str) -> None:
    """Refuse a ``key_name`` that the region has no key pair of."""
    _, why = _found(
        lambda: ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"], _NOT_A_KEY, "'execution.aws.key_name'"
    )
    if why is not None:
        keys = _listed(lambda: ec2.describe_key_pairs()["KeyPairs"])
        raise AwsError(
            f"'execution.aws.key_name' must be the name of a key pair of region {ec2.meta.region_name} "
            "(a key pair belongs to one region: `aws ec2 describe-key-pairs`), "
            f"got {name!r}{why}{_nearest(name, {k['KeyName']: repr(k['KeyName']) for k in keys})}"
        )


def _nearest(value: str, options: Mapping[str, str]) -> str:
    """``; did you mean ...?.`` with the words for the few options nearest ``value``, else ``.``."""
    close = difflib.get_close_matches(value, list(options), n=_MAX_NEAR, cutoff=_NEAR)
    said = list(dict.fromkeys(options[c] for c in close))
    return f"; did you mean {' or '.join(said)}?" if said else "."


def _found(
    describe: Callable[[], list[Any]], missing: tuple[str, ...], what: str | None
) -> tuple[list[Any], str | None]:
    """What ``describe()`` finds, and ``None``; or nothing and the words saying why it found nothing.

    A denied or failed look finds nothing and raises nothing: the first launch checks. It is
    said (the optional permission a user may not have granted), unless ``what`` is ``None``.
    """
    client_error = importlib.import_module("botocore.exceptions").ClientError  # botocore ships no types
    try:
        found = describe()
    except client_error as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in missing:
            return [], f" ({code})"
        if what is None:
            _log.debug("could not list the names to offer: %s", refused(exc))
        else:
            say_refused(what, exc)
        return [], None
    return found, None if found else ""


def refused(exc: BaseException) -> str:
    """``AWS refused CALL (CODE)``, for a call AWS refused (botocore's ``ClientError``) or that failed."""
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", "")) or type(exc).__name__
    return f"AWS refused {getattr(exc, 'operation_name', 'the call')} ({code})"


def say_refused(what: str, exc: BaseException, then: str = "the first launch checks it") -> None:
    """Say, without ``-v``, that AWS refused the look that checks ``what`` (an optional permission).

    ``then`` says what becomes of the unchecked value.
    """
    _log.info("could not check %s before the study is created: %s; %s", what, refused(exc), then)


def _listed(describe: Callable[[], list[Any]]) -> list[Any]:
    """What ``describe()`` lists, or nothing where it may not (it only feeds hints)."""
    found, _ = _found(describe, (), None)
    return found
