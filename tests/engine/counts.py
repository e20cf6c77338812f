"""The progress count (``done k/N``) read around the queueing of retries: it must never step back."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import optuna
import pytest

from autotweak.engine._monitor import Monitor
from autotweak.spec import Experiment


def done(study: optuna.Study, exp: Experiment) -> int:
    """The progress count (``done N/10``) as a view of the study would show it now."""
    return Monitor(study, exp, lambda progress: None).poll().done


def count_around_requeue(
    monkeypatch: pytest.MonkeyPatch, module: ModuleType, exp: Experiment
) -> list[tuple[int, int]]:
    """The count just before and after each retry ``module`` queues (or refuses), as it does so.

    The trial has failed by then and its retry is not queued yet: a count read in between
    that counted the failed trial, then one less once its retry stood in, stepped back.
    """
    around: list[tuple[int, int]] = []
    queue = module.requeue

    def counted_around(study: optuna.Study, *args: Any, **kwargs: Any) -> bool:
        before = done(study, exp)
        queued = queue(study, *args, **kwargs)
        around.append((before, done(study, exp)))
        return bool(queued)

    monkeypatch.setattr(module, "requeue", counted_around)
    return around
