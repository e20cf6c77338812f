"""Launch checks the credentials may not make (an optional Describe permission), with moto enforcing IAM.

moto checks neither credentials nor policies unless told to: its ``/moto-api/reset-auth``
sets after how many more requests it starts to (``INITIAL_NO_AUTH_ACTION_COUNT``), for the
whole server. The fixture makes an IAM user first, with the checks off, then turns them on.
"""

from __future__ import annotations

import json
import logging
import math
import re
import urllib.request
from collections.abc import Iterator

import boto3
import pytest

from autotweak.aws import AwsError, SpotExecutor
from tests.aws.test_setup_checks import spot_experiment
from tests.aws.test_spot_executor import TYPES

USER = "autotweak-prices-only"
PRICES_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "ec2:DescribeSpotPriceHistory", "Resource": "*"}],
}
CHECKS = "autotweak.aws._launch_checks"


def _enforce_iam(endpoint: str, after: float) -> None:
    """moto checks each request's signature and its caller's policies ``after`` requests on (inf: never)."""
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=str(after).encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},  # not a form: moto reads the body as it is
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


@pytest.fixture
def prices_only(aws_stores, monkeypatch) -> Iterator[None]:
    """boto3's chain finds the keys of an IAM user who may read spot prices and nothing else."""
    iam = boto3.client("iam")  # the test's own keys, kept for the clean-up
    iam.create_user(UserName=USER)
    iam.put_user_policy(UserName=USER, PolicyName="prices", PolicyDocument=json.dumps(PRICES_ONLY))
    key = iam.create_access_key(UserName=USER)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it keeps the credentials it found before
    endpoint = aws_stores.env["AWS_ENDPOINT_URL"]
    try:
        _enforce_iam(endpoint, 0)
        yield
    finally:
        _enforce_iam(endpoint, math.inf)
        iam.delete_access_key(UserName=USER, AccessKeyId=key["AccessKeyId"])
        iam.delete_user_policy(UserName=USER, PolicyName="prices")
        iam.delete_user(UserName=USER)


def test_a_check_the_credentials_may_not_make_is_skipped_and_said(
    aws_stores, make_experiment, prices_only, caplog
):
    """Each value is wrong: with the permissions, each is refused (see tests/aws/test_setup_checks.py)."""
    wrong = {
        "instance_types": [*TYPES, "g4dn.xlarg"],  # no spot price: a typo, said without the closest names
        "image_id": "ami-0123456789abcdef0",
        "iam_instance_profile": "autotweak-wroker",
        "subnet_id": "subnet-0123456789abcdef0",
        "security_group_ids": ["sg-0123456789abcdef0"],
        "key_name": "autotweak-debgu",
    }
    with caplog.at_level(logging.INFO, logger=CHECKS):
        for aws in (wrong, {"image_id": wrong["image_id"]}):  # without a subnet: the default VPC
            exp = spot_experiment(make_experiment, aws_stores, "spot-denied", **aws)
            SpotExecutor(2).check_setup(exp, aws_stores.storage, aws_stores.tracking_uri)
    said = [r.getMessage() for r in caplog.records if r.name == CHECKS and r.levelno == logging.INFO]
    checked = [
        ("'execution.aws.image_id'", "DescribeImages"),
        ("'execution.aws.iam_instance_profile'", "GetInstanceProfile"),
        ("'execution.aws.subnet_id'", "DescribeSubnets"),
        ("'execution.aws.security_group_ids'", "DescribeSecurityGroups"),
        ("'execution.aws.key_name'", "DescribeKeyPairs"),
        ("'execution.aws.image_id'", "DescribeImages"),
        ("'execution.aws.iam_instance_profile'", "GetInstanceProfile"),
        (
            "that the region has a default VPC (instances launch there without 'execution.aws.subnet_id')",
            "DescribeVpcs",
        ),
    ]
    expected = [
        f"could not check {what} before the study is created: AWS refused {call} (" for what, call in checked
    ]
    assert [line[: len(start)] for line, start in zip(said, expected, strict=True)] == expected, said
    assert all(line.endswith("); the first launch checks it") for line in said), said
    # the type without a spot price: one line, which says the check AWS refused
    unpriced = [r.getMessage() for r in caplog.records if "no spot price" in r.getMessage()]
    assert len(unpriced) == 1, unpriced
    assert re.fullmatch(
        r"no spot price in region us-east-1 for g4dn\.xlarg; they are not used \(not checked against the "
        r"types the region offers: AWS refused DescribeInstanceTypeOfferings "
        r"\((AccessDenied|UnauthorizedOperation)\)\)",
        unpriced[0],
    ), unpriced  # moto's code is AccessDenied, AWS's UnauthorizedOperation


def test_types_none_of_which_has_a_spot_price_are_refused_saying_why_no_name_is_offered(
    aws_stores, make_experiment, prices_only
):
    exp = spot_experiment(make_experiment, aws_stores, "spot-denied-types", instance_types=["g4dn.xlarg"])
    with pytest.raises(AwsError) as caught:
        SpotExecutor(2).check_setup(exp, aws_stores.storage, aws_stores.tracking_uri)
    said = str(caught.value)
    assert said.startswith(
        "'execution.aws.instance_types' must hold a type with a spot price in region us-east-1, got "
        "'g4dn.xlarg' (unknown types, or types the region does not offer; AWS refused "
        "DescribeInstanceTypeOfferings ("  # moto's code is AccessDenied, AWS's UnauthorizedOperation
    ), said
    assert said.endswith("), so the closest names are not offered)."), said
