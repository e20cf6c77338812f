"""Reported steps read as training progress: when a trial has trained in full.

Steps count from 1: with ``metric.steps: n`` (``n_steps`` of a pruner), a report at step
``s`` means ``s / n`` of a full training done, and step ``n`` ends it. A trial whose first
report is at step 0 counts from 0 (``step=epoch`` in a PyTorch loop): its last report is at
step ``n - 1``. Once a trial has trained in full, pruning it saves nothing and throws its
result away, so no pruner stops it then.
"""

from __future__ import annotations

__all__ = ["trained_in_full"]


def trained_in_full(first: int, last: int, n_steps: int) -> bool:
    """Whether a trial that reported steps ``first`` to ``last`` has trained in full.

    Example:
        >>> trained_in_full(1, 20, 20), trained_in_full(1, 19, 20), trained_in_full(0, 19, 20)
        (True, False, True)
        >>> trained_in_full(1, 25, 20)  # more reports than declared: trained in full all the same
        True
    """
    return last >= n_steps - (first == 0)
