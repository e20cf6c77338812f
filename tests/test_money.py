"""One rule for dollars, wherever they are shown: the CLI, the logs, the report (Markdown, HTML, MLflow)."""

from __future__ import annotations

import pytest

from autotweak._money import usd


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
