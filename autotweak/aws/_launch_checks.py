"""What a launch names, checked before the study exists: the AMI and the instance profile.

Without these checks, EC2 refuses each launch after the study is created (a typo, another
region's AMI), and the launcher gives up only after three tries at its poll interval.
Each check needs a read permission that is optional: without it, the first launch checks.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any

from autotweak.aws._errors import AwsError

__all__ = ["check_image", "check_profile"]

_log = logging.getLogger(__name__)

# Codes of an image id EC2 does not have (or cannot launch) in the client's region.
_NOT_AN_IMAGE = ("InvalidAMIID.NotFound", "InvalidAMIID.Malformed", "InvalidAMIID.Unavailable")
# Codes of an instance profile name IAM does not have (ValidationError: an ARN, say).
_NOT_A_PROFILE = ("NoSuchEntity", "ValidationError")


def check_image(ec2: Any, image_id: str) -> None:
    """Refuse an ``image_id`` that EC2 does not describe in the client's region.

    Raises:
        AwsError: If EC2 has no such image in the region (naming the field, the region and the id).
    """
    region = ec2.meta.region_name
    found = _found(lambda: ec2.describe_images(ImageIds=[image_id])["Images"], _NOT_AN_IMAGE, image_id)
    if found is not None:
        raise AwsError(
            f"'execution.aws.image_id' must be an AMI of region {region} that this account can launch "
            "(an AMI belongs to one region: copy it, or set 'execution.aws.region'), "
            f"got {image_id!r}{found}."
        )


def check_profile(iam: Any, name: str) -> None:
    """Refuse an ``iam_instance_profile`` that IAM does not have.

    Raises:
        AwsError: If the account has no instance profile of that name.
    """
    found = _found(lambda: [iam.get_instance_profile(InstanceProfileName=name)], _NOT_A_PROFILE, name)
    if found is not None:
        raise AwsError(
            "'execution.aws.iam_instance_profile' must be the name of an instance profile of this account "
            f"(`aws iam list-instance-profiles`), got {name!r}{found}."
        )


def _found(describe: Callable[[], list[Any]], missing: tuple[str, ...], what: str) -> str | None:
    """``None`` if ``describe()`` finds something (or may not look), else the words saying why not."""
    client_error = importlib.import_module("botocore.exceptions").ClientError  # botocore ships no types
    try:
        return None if describe() else ""
    except client_error as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in missing:
            return f" ({code})"
        _log.debug("could not check %s: %s: %s", what, code, error.get("Message"))
        return None
