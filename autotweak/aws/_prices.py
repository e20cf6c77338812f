"""The spot prices of the listed instance types; the types refused: unknown, elsewhere, above max_price.

Each refusal is one line naming the field, the region and the value, with the fix: the
closest names to a typo, the region to set for a type this one does not offer, the
``max_price`` that would buy the cheapest type (prices as :func:`~autotweak._money.usd_per_hour`).
"""

from __future__ import annotations

import difflib
import importlib
import logging
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from autotweak._money import usd_per_hour
from autotweak.aws._errors import AwsError
from autotweak.aws._launch_checks import refused
from autotweak.spec._parts import AwsSpot

__all__ = ["affordable", "latest_prices", "priced_as_money", "priced_types", "spot_prices"]

_log = logging.getLogger(__name__)

# AWS lists spot prices to four decimals (and more digits than matter): a max_price to suggest is too.
_DECIMALS = 4
# A price in AWS's words: "price of 0.1234567", "max price (0.1)", "spot price is 0.52".
_PRICE_IN_WORDS = re.compile(r"(\bprice\b[^0-9$.\n]{0,30}?)(\d+\.\d+)")


def spot_prices(ec2: Any, instance_types: Iterable[str]) -> dict[str, float]:
    """The latest Linux spot price per instance-hour of each type (the highest over zones).

    No types, no prices: AWS would list every type's (``InstanceTypes=[]`` filters nothing).
    """
    types = list(instance_types)
    if not types:
        return {}
    pages = ec2.get_paginator("describe_spot_price_history").paginate(
        InstanceTypes=types,
        ProductDescriptions=["Linux/UNIX"],
        StartTime=datetime.now(UTC),
    )
    return latest_prices(row for page in pages for row in page["SpotPriceHistory"])


def latest_prices(rows: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Each type's price from rows of AWS's spot price history: per zone the latest, then the highest.

    Example:
        >>> from datetime import datetime
        >>> latest_prices([
        ...     {"InstanceType": "g5.xlarge", "AvailabilityZone": "us-east-1a",
        ...      "SpotPrice": "0.400000", "Timestamp": datetime(2026, 1, 1, 10)},
        ...     {"InstanceType": "g5.xlarge", "AvailabilityZone": "us-east-1a",
        ...      "SpotPrice": "0.300000", "Timestamp": datetime(2026, 1, 1, 11)},
        ...     {"InstanceType": "g5.xlarge", "AvailabilityZone": "us-east-1b",
        ...      "SpotPrice": "0.350000", "Timestamp": datetime(2026, 1, 1, 9)},
        ... ])
        {'g5.xlarge': 0.35}
    """
    latest: dict[tuple[str, str], tuple[datetime, float]] = {}
    for row in rows:
        key = (row["InstanceType"], row.get("AvailabilityZone", ""))
        seen = latest.get(key)
        if seen is None or row["Timestamp"] > seen[0]:
            latest[key] = (row["Timestamp"], float(row["SpotPrice"]))
    prices: dict[str, float] = {}
    for (kind, _), (_, price) in latest.items():
        prices[kind] = max(price, prices.get(kind, 0.0))
    return prices


def priced_types(ec2: Any, settings: AwsSpot) -> dict[str, float]:
    """The spot price of each listed type at or under ``max_price``; refuse unknown types.

    Raises:
        AwsError: If a listed type does not exist (with the closest known names) or the
            region does not offer it, or no listed type has a spot price at or under ``max_price``.
    """
    prices = spot_prices(ec2, settings.instance_types)
    unpriced = [t for t in settings.instance_types if t not in prices]
    if unpriced:
        _check_known(ec2, unpriced, every=len(unpriced) == len(settings.instance_types))
    return affordable(settings, prices, ec2.meta.region_name)


def _check_known(ec2: Any, unpriced: list[str], *, every: bool) -> None:
    """Refuse a type without a spot price that the region does not offer (a typo, another region's)."""
    region = ec2.meta.region_name
    client_error = importlib.import_module("botocore.exceptions").ClientError  # botocore ships no types
    unchecked = ""
    try:
        pages = ec2.get_paginator("describe_instance_type_offerings").paginate(LocationType="region")
        known = {o["InstanceType"] for page in pages for o in page["InstanceTypeOfferings"]}
    except client_error as exc:  # no ec2:DescribeInstanceTypeOfferings: say what is known
        if every:
            raise AwsError(
                f"'execution.aws.instance_types' must hold a type with a spot price in region {region}, "
                f"got {', '.join(repr(t) for t in unpriced)} (unknown types, or types the region does not "
                f"offer; {refused(exc)}, so the closest names are not offered)."
            ) from None
        unchecked = f" (not checked against the types the region offers: {refused(exc)})"
        known = set(unpriced)
    for kind in unpriced:
        if kind not in known:
            raise AwsError(_not_offered(ec2, kind, known))
    _log.warning(
        "no spot price in region %s for %s; they are not used%s", region, ", ".join(unpriced), unchecked
    )


def _not_offered(ec2: Any, kind: str, known: set[str]) -> str:
    """Why ``kind`` cannot be launched in the client's region: a type of other regions only, or a typo."""
    region = ec2.meta.region_name
    if kind in ec2.meta.service_model.shape_for("InstanceType").enum:  # botocore's list of every type
        return (
            f"'execution.aws.instance_types' must hold types that region {region} offers, got {kind!r}: "
            f"an instance type of other regions; set 'execution.aws.region' to one that offers it, or list "
            f"types of this one (`aws ec2 describe-instance-type-offerings --region {region}`)."
        )
    close = difflib.get_close_matches(kind, sorted(known), n=3)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else "."
    return (
        f"'execution.aws.instance_types' holds an unknown instance type {kind!r} "
        f"(no spot price in region {region}){hint}"
    )


def affordable(settings: AwsSpot, prices: dict[str, float], region: str) -> dict[str, float]:
    """The instance types with a known price at or under ``max_price``.

    Raises:
        AwsError: If none, naming each listed type's price and the ``max_price`` that buys the cheapest.
    """
    cap = settings.max_price
    listed = settings.instance_types
    chosen = {t: prices[t] for t in listed if t in prices and (cap is None or prices[t] <= cap)}
    if chosen:
        return chosen
    priced = {t: prices[t] for t in listed if t in prices}
    if cap is None or not priced:
        raise AwsError(
            f"'execution.aws.instance_types' must hold a type with a spot price in region {region}, got "
            f"{', '.join(repr(t) for t in listed)} (the region offers them, but sells none on spot now); "
            "list other types, or set 'execution.aws.region' to another region."
        )
    shown = ", ".join(f"{t} {usd_per_hour(p)}" for t, p in priced.items())
    cheapest = math.ceil(round(min(priced.values()) * 10**_DECIMALS, 6)) / 10**_DECIMALS
    raise AwsError(
        f"'execution.aws.max_price' must be at or above the spot price of a type of "
        f"'execution.aws.instance_types' in region {region}, got max_price={cap} ({usd_per_hour(cap)}), "
        f"under every price: {shown}; raise it to {cheapest:.{_DECIMALS}f} or more, or list cheaper types."
    )


def priced_as_money(message: str) -> str:
    """An AWS error message with its prices per hour as money (AWS gives them with all its digits).

    Example:
        >>> priced_as_money("Your max price (0.1) is lower than the spot price of 0.1234567")
        'Your max price ($0.1000/h) is lower than the spot price of $0.1235/h'
    """
    return _PRICE_IN_WORDS.sub(lambda m: m.group(1) + usd_per_hour(float(m.group(2))), message)
