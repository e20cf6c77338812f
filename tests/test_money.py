"""One rule for dollars, wherever they are shown: the CLI, the logs, the report (Markdown, HTML, MLflow)."""

from __future__ import annotations

import pytest

from autotweak._money import usd, usd_per_hour


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (1.133e-07, "<$0.01"),  # moto's prices: the CLI said $1.133e-07, the report $0.00
        (0.0049, "<$0.01"),
        (0.0, "$0.00"),
        (0.005, "$0.01"),
        (1.234, "$1.23"),
        (1234.5, "$1,234.50"),
        (2_500_000.0, "$2,500,000.00"),
        (-3.5, "-$3.50"),
    ],
)
def test_dollars_read_the_same_everywhere(amount, shown):
    assert usd(amount) == shown


@pytest.mark.parametrize(
    ("price", "shown"),
    [
        (0.1234567, "$0.1235/h"),  # AWS's digits: the launcher's error printed 0.1234567
        (0.526, "$0.5260/h"),
        (0.0049, "$0.0049/h"),  # to the cent, a price and a max_price under it both read $0.00
        (1e-05, "<$0.0001/h"),  # moto's prices: the launcher said <$0.01
        (0.0, "$0.0000/h"),
        (32.7726, "$32.7726/h"),
        (1234.5, "$1,234.5000/h"),
    ],
)
def test_hourly_prices_read_to_four_decimals(price, shown):
    assert usd_per_hour(price) == shown
