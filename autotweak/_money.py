"""Dollars as people read them: one rule for the CLI, the logs, the reports and what MLflow shows.

An amount is to the cent, with thousands separators; a positive amount under half a cent is
``<$0.01`` (the first seconds of an instance), not ``$0.00`` nor ``$1.133e-07``. A price per
instance-hour is to four decimals (``$0.1235/h``), as AWS lists spot prices: a cent would
tell neither two types' prices nor a price and ``max_price`` apart; a positive price under
half of ``$0.0001`` (moto's) is ``<$0.0001/h``.
"""

from __future__ import annotations

import math

__all__ = ["usd", "usd_per_hour"]

_CENTS = 2
_HOURLY_DECIMALS = 4


def usd(amount: float) -> str:
    """``amount`` US dollars in words people read.

    Example:
        >>> usd(1234.5), usd(1.234), usd(1.133e-07), usd(0.0)
        ('$1,234.50', '$1.23', '<$0.01', '$0.00')
    """
    return _dollars(amount, _CENTS)


def usd_per_hour(price: float) -> str:
    """A price of ``price`` US dollars per instance-hour in words people read.

    Example:
        >>> usd_per_hour(0.1234567), usd_per_hour(0.5), usd_per_hour(1e-05), usd_per_hour(1234.5)
        ('$0.1235/h', '$0.5000/h', '<$0.0001/h', '$1,234.5000/h')
    """
    return _dollars(price, _HOURLY_DECIMALS) + "/h"


def _dollars(amount: float, decimals: int) -> str:
    """``amount`` to ``decimals`` decimals; a positive amount that would read as zero reads ``<$0.0…1``."""
    if not math.isfinite(amount):
        return f"${amount}"
    smallest = 10.0**-decimals
    if 0 < amount < smallest / 2:
        return f"<${smallest:.{decimals}f}"
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.{decimals}f}"
