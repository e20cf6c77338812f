"""What the launcher says of the listed types' spot prices against ``max_price``: money, and the fix."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from autotweak._validation import Where
from autotweak.aws import AwsError
from autotweak.aws._prices import affordable, latest_prices, priced_as_money, spot_prices
from autotweak.spec._parts import AwsSpot
from tests.aws.test_spot_executor import aws_section


def _settings(**aws: object) -> AwsSpot:
    return AwsSpot.parse(aws_section(**aws), Where())


def test_a_max_price_under_every_spot_price_names_the_prices_as_money_and_the_price_that_buys_one():
    prices = {"g4dn.xlarge": 0.1234567, "g5.xlarge": 0.52}
    with pytest.raises(AwsError) as caught:
        affordable(_settings(max_price=0.1), prices, "us-east-1")
    assert str(caught.value) == (
        "'execution.aws.max_price' must be at or above the spot price of a type of "
        "'execution.aws.instance_types' in region us-east-1, got max_price=0.1 ($0.1000/h), under every "
        "price: g4dn.xlarge $0.1235/h, g5.xlarge $0.5200/h; raise it to 0.1235 or more, or list cheaper "
        "types."
    )


def test_the_max_price_suggested_buys_the_cheapest_type():
    """Rounded up, not to the nearest: 0.12341 rounded would be 0.1234, under the price."""
    prices = {"g4dn.xlarge": 0.12341}
    with pytest.raises(AwsError, match=r"raise it to 0\.1235 or more"):
        affordable(_settings(max_price=0.1), prices, "us-east-1")
    assert affordable(_settings(max_price=0.1235), prices, "us-east-1") == prices


def test_the_max_price_refused_is_said_as_written_not_to_six_digits():
    with pytest.raises(AwsError, match=r"got max_price=0\.123456789 \(\$0\.1235/h\)"):
        affordable(_settings(max_price=0.123456789), {"g4dn.xlarge": 0.5}, "us-east-1")


def _row(kind: str, zone: str, price: str, hour: int) -> dict[str, object]:
    """A row of DescribeSpotPriceHistory as boto3 gives it: the price as text, to AWS's digits."""
    when = datetime(2026, 11, 30, hour, tzinfo=UTC)
    return {"InstanceType": kind, "AvailabilityZone": zone, "SpotPrice": price, "Timestamp": when}


def test_a_type_is_priced_at_the_latest_price_of_its_dearest_zone():
    rows = [
        _row("g5.xlarge", "us-east-1a", "0.900000", 8),  # an older price of the zone: not now
        _row("g5.xlarge", "us-east-1a", "0.412345678901", 10),
        _row("g5.xlarge", "us-east-1b", "0.398700", 11),
        _row("g4dn.xlarge", "us-east-1b", "0.157800", 9),
        _row("g4dn.xlarge", "us-east-1b", "0.163100", 7),
    ]
    assert latest_prices(rows) == {"g5.xlarge": 0.412345678901, "g4dn.xlarge": 0.1578}
    assert latest_prices([]) == {}


def test_no_instance_types_have_no_prices_not_every_types(ec2):
    """``InstanceTypes=[]`` filters nothing: AWS (and moto) would list every type's prices."""
    assert spot_prices(ec2, []) == {}
    assert set(spot_prices(ec2, ["g4dn.xlarge"])) == {"g4dn.xlarge"}


def test_types_the_region_offers_without_a_spot_price_are_said_so_not_as_a_python_dict():
    with pytest.raises(AwsError) as caught:
        affordable(_settings(max_price=None), {}, "us-east-1")
    assert str(caught.value) == (
        "'execution.aws.instance_types' must hold a type with a spot price in region us-east-1, got "
        "'g4dn.xlarge', 'g5.xlarge' (the region offers them, but sells none on spot now); list other "
        "types, or set 'execution.aws.region' to another region."
    )


@pytest.mark.parametrize(
    ("aws", "shown"),
    [
        (  # RunInstances' SpotMaxPriceTooLow, as EC2 words it
            "Your Spot request price of 0.1 is lower than the minimum required Spot request fulfillment "
            "price of 0.1234567.",
            "Your Spot request price of $0.1000/h is lower than the minimum required Spot request "
            "fulfillment price of $0.1235/h.",
        ),
        ("max price (0.05) under spot price (0.52)", "max price ($0.0500/h) under spot price ($0.5200/h)"),
        ("No capacity for g5.xlarge in us-east-1a.", "No capacity for g5.xlarge in us-east-1a."),
    ],
    ids=["spot request price", "in brackets", "no price"],
)
def test_a_launch_failure_from_aws_shows_its_prices_as_money(aws, shown):
    assert priced_as_money(aws) == shown
