"""AWS errors in one line: what is missing or refused, and how to provide it.

botocore raises its own exceptions (no credentials, an endpoint it cannot reach, a refused
call); the aws-spot executor and ``autotweak workers`` turn them into :class:`AwsError`,
which the CLI prints as one line instead of a traceback.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from autotweak.exceptions import AutotweakError

__all__ = ["AwsAccessError", "AwsError", "aws_errors"]

CREDENTIALS_HELP = (
    "set AWS_PROFILE to a profile of ~/.aws/config (`aws configure`, `aws sso login`), or "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where an instance profile provides them"
)
_ENDPOINT_HELP = (
    "check the region (--region, 'execution.aws.region', AWS_REGION) and AWS_ENDPOINT_URL "
    "(unset for AWS itself), and the network"
)
# Error codes of a call refused for who is calling, not for what it asks.
_AUTH_CODES = frozenset(
    {
        "AuthFailure",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "OptInRequired",
        "RequestExpired",
        "SignatureDoesNotMatch",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
    }
)


class AwsError(AutotweakError):
    """An EC2 call failed or EC2 could not provide what the spec asks."""


class AwsAccessError(AwsError):
    """AWS cannot be used from here: no credentials, no endpoint, or the credentials are refused."""


def _botocore() -> Any:
    return importlib.import_module("botocore.exceptions")  # botocore ships no types


def describe(exc: BaseException, what: str) -> AwsError | None:
    """``exc`` as one line for ``what`` was being done, or ``None`` if it is no AWS error."""
    errors = _botocore()
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, errors.NoCredentialsError):
        return AwsAccessError(f"no AWS credentials found for {what}: {CREDENTIALS_HELP}.")
    if isinstance(exc, errors.PartialCredentialsError | errors.ProfileNotFound):
        return AwsAccessError(f"the AWS credentials for {what} are incomplete ({first}): {CREDENTIALS_HELP}.")
    if isinstance(exc, errors.NoRegionError):
        return AwsAccessError(
            f"no AWS region is set for {what}: pass --region (or 'execution.aws.region' in the spec), "
            "or set AWS_REGION or AWS_DEFAULT_REGION."
        )
    if isinstance(exc, errors.EndpointConnectionError | errors.ConnectTimeoutError):
        url = getattr(exc, "kwargs", {}).get("endpoint_url", "?")
        return AwsAccessError(f"cannot reach the AWS endpoint {url} for {what}: {_ENDPOINT_HELP}.")
    if isinstance(exc, errors.ClientError):
        error = getattr(exc, "response", {}).get("Error", {})
        code = error.get("Code", "?")
        message = str(error.get("Message", "")).strip().splitlines()[:1]
        reason = f"{code}: {message[0]}" if message else code
        if code in _AUTH_CODES:
            return AwsAccessError(f"AWS refused the credentials for {what} ({reason}): {CREDENTIALS_HELP}.")
        return AwsError(f"EC2 failed {what}: {reason}")
    if isinstance(exc, errors.BotoCoreError):
        return AwsError(f"EC2 failed {what}: {type(exc).__name__}: {first}")
    if type(exc).__module__.split(".")[0] == "botocore":
        # Not a BotoCoreError (ResponseParserError): most often an endpoint that is no EC2 of
        # that region, such as a region name AWS does not have, which answers with no XML.
        return AwsError(f"EC2 failed {what}: {type(exc).__name__}: {first[:200]}; {_ENDPOINT_HELP}.")
    return None


@contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """Raise botocore's errors as :class:`AwsError`, one line naming ``what`` failed and how to fix it.

    Example:
        >>> with aws_errors("listing the workers"):  # doctest: +SKIP
        ...     find_instances(ec2_client(None))
    """
    try:
        yield
    except AwsError:
        raise
    except Exception as exc:
        error = describe(exc, what)
        if error is None:
            raise
        raise error from exc
