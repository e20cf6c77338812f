"""Dollars as people read them: one rule for the CLI, the logs, the reports and what MLflow shows.

To the cent, with thousands separators; a positive amount under half a cent is ``<$0.01``
(moto's prices, the first seconds of an instance), not ``$0.00`` nor ``$1.133e-07``.
"""

from __future__ import annotations

import math

__all__ = ["usd"]

_HALF_CENT = 0.005


def usd(amount: float) -> str:
    """``amount`` US dollars in words people read.

    Example:
        >>> usd(1234.5), usd(1.234), usd(1.133e-07), usd(0.0)
        ('$1,234.50', '$1.23', '<$0.01', '$0.00')
    """
    if not math.isfinite(amount):
        return f"${amount}"
    if 0 < amount < _HALF_CENT:
        return "<$0.01"
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}"
