"""What a trial of the ask/tell ``Study`` ends as: from what ``tell()`` was given, or from its close."""

from __future__ import annotations

import math

from autotweak._validation import score_of
from autotweak.engine._retries import mark_interrupted
from autotweak.engine._session import Outcome
from autotweak.engine._trial import Trial
from autotweak.engine._worker import interrupted_outcome
from autotweak.exceptions import ArgumentError

__all__ = ["check_told", "interrupt", "still_open", "told_outcome"]

_STATES = ("complete", "pruned", "failed")


def check_told(value: float | None, state: str) -> None:
    """Refuse an unknown ``state``, a ``value`` that is not a number, and ``"complete"`` without one.

    Raises:
        ArgumentError: Naming the argument, the rule and the value.
    """
    if state not in _STATES:
        raise ArgumentError(f"'state' of tell() must be one of {', '.join(_STATES)}, got {state!r}.")
    if value is not None and score_of(value) is None:
        raise ArgumentError(
            f"'value' of tell() must be a number (not text or a bool) or None, got value={value!r}."
        )
    if value is None and state == "complete":
        raise ArgumentError(
            "'value' of tell() is required for state='complete', got value=None; "
            "tell a trial that did not finish with state='failed' or state='pruned'."
        )


def told_outcome(handle: Trial, value: float | None, state: str, error: str | None) -> Outcome:
    """The outcome of a trial told ``value`` and ``state`` (checked): a non-finite value fails it."""
    number = None if value is None else score_of(value)
    if state == "complete":
        if number is None or not math.isfinite(number):
            return Outcome("failed", None, f"the trial was told a value of {value!r}, not a finite number")
        return Outcome("complete", number)
    if state == "pruned":
        last = handle.steps[-1][1] if handle.steps else number
        return Outcome("pruned", last)
    return Outcome("failed", None, error or "told as failed")


def still_open(handle: Trial) -> Outcome:
    """A trial open when the study was closed without an exception: failed."""
    return Outcome("failed", None, "still open when the study was closed")


def interrupt(handle: Trial) -> Outcome:
    """A trial open when Ctrl-C left the ``with`` block: marked, then queued again when told."""
    mark_interrupted(handle.optuna_trial)
    return interrupted_outcome(handle)
