"""The workers' AMI, checked before the study exists: a typo or another region's id is said at once.

Without the check, EC2 refuses each launch after the study is created, and the launcher
gives up only after three tries at its poll interval.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from autotweak.aws._errors import AwsError

__all__ = ["check_image"]

_log = logging.getLogger(__name__)

# Codes of an image id EC2 does not have (or cannot launch) in the client's region.
_NOT_AN_IMAGE = ("InvalidAMIID.NotFound", "InvalidAMIID.Malformed", "InvalidAMIID.Unavailable")


def check_image(ec2: Any, image_id: str) -> None:
    """Refuse an ``image_id`` that EC2 does not describe in the client's region.

    Without ``ec2:DescribeImages`` (optional), the image is not checked here; EC2 checks it
    at the first launch.

    Raises:
        AwsError: If EC2 has no such image in the region (naming the field, the region and the id).
    """
    region = ec2.meta.region_name
    client_error = importlib.import_module("botocore.exceptions").ClientError  # botocore ships no types
    try:
        images = ec2.describe_images(ImageIds=[image_id])["Images"]
    except client_error as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code not in _NOT_AN_IMAGE:
            _log.debug("could not check image %s in %s: %s: %s", image_id, region, code, error.get("Message"))
            return
        images, reason = [], f" ({code})"
    else:
        reason = ""
    if not images:
        raise AwsError(
            f"'execution.aws.image_id' must be an AMI of region {region} that this account can launch "
            "(an AMI belongs to one region: copy it, or set 'execution.aws.region'), "
            f"got {image_id!r}{reason}."
        )
