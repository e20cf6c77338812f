"""What ``optimize`` and ``resume`` say as a study ends: how to go on, why nothing completed, its cost."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from autotweak._locations import redact
from autotweak._money import usd
from autotweak.cli._main import _console

if TYPE_CHECKING:
    from autotweak.engine import BaseExecutor, StudyResult
    from autotweak.spec import Experiment

__all__ = [
    "none_completed",
    "on_server",
    "resume_command",
    "said_at_the_end",
    "say_budget_spent",
    "say_cost",
]


def on_server(tracking_uri: str) -> bool:
    """Whether ``tracking_uri`` is a tracking server, whose own UI shows its runs."""
    return tracking_uri.startswith(("http://", "https://"))


def resume_command(study: str, options: dict[str, Any]) -> str:
    """The command that continues ``study`` where this one ran its workers (else they run here)."""
    executor = options.get("executor") or "processes"
    return f"autotweak resume {study}" + ("" if executor == "processes" else f" --executor {executor}")


@contextmanager
def said_at_the_end() -> Iterator[None]:
    """Drop the engine's warnings whose content the study's result holds: the CLI says it once, at the end.

    A study whose every trial failed was said twice: the engine's warning with the first
    failure, then the CLI's error; :func:`none_completed` says all of both.
    """
    from autotweak.engine._none_completed import IN_RESULT

    def keep(record: logging.LogRecord) -> bool:
        return not getattr(record, IN_RESULT, False)

    logger = logging.getLogger("autotweak.engine._none_completed")
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def none_completed(result: StudyResult, options: dict[str, Any]) -> str:
    """The error for a study whose trials failed, none completed: the first failure, and what to do.

    Example:
        ``every trial of study 'wine' failed (2 failed, none completed); the first, trial 0,
        failed with: KeyError: 'optim'; where an exception was raised, its traceback is kept
        in the trial's MLflow run (artifact traceback.txt; `autotweak ui` shows it). Fix the
        objective, then resume the study (its 2 trial(s) spent its budget; --trials is the
        study's total): `autotweak resume wine --trials 4```
    """
    from autotweak.engine._loop import FAIL_FAST_REASON

    name, states = result.study_name, result.summary.counts
    failed, lost = states.get("failed"), states.get("preempted")
    said = f"every trial of study '{name}' failed ({failed} failed, none completed"
    if lost:  # their machines went away: not failures, so not every trial failed
        said = (
            f"no trial of study '{name}' completed ({failed} failed, {lost} preempted: their machines "
            "went away, not the objective's fault"
        )
    fail_fast = sum(reason == FAIL_FAST_REASON for reason in result.stop_reasons)
    if fail_fast:
        said += f"; {fail_fast} worker(s) stopped because {FAIL_FAST_REASON}"
    if result.first_failure is not None:
        number, reason = result.first_failure
        said += f"); the first, trial {number}, failed with: {reason}"
    else:  # no trial ran in this session: none failed before our eyes
        said += f"); `autotweak report {name}` lists each failure"
    uri = result.tracking_uri or ""
    shows = f"the MLflow UI at {redact(uri)}" if on_server(uri) else "`autotweak ui`"
    command, spent = resume_command(name, options), ""
    if "trials" in result.stop_reasons and result.trials_counted:  # a plain resume would run nothing
        command += f" --trials {2 * result.trials_counted}"
        spent = f" (its {result.trials_counted} trial(s) spent its budget; --trials is the study's total)"
    return (
        f"{said}; where an exception was raised, its traceback is kept in the trial's MLflow run "
        f"(artifact traceback.txt; {shows} shows it). Fix the objective, then resume the study{spent}: "
        f"`{command}`"
    )


def say_cost(executor: BaseExecutor | None, study: str) -> None:
    """What the study's instances cost, when the executor bills them (aws-spot)."""
    cost = getattr(executor, "cost", None)
    if cost is not None:
        _console.line(
            f"instances cost {usd(cost.session_usd)} this session, {usd(cost.study_usd)} for study "
            f"'{study}' in all"
        )


def say_budget_spent(experiment: Experiment, result: StudyResult) -> None:
    """Say why a run started no trial when the study already had its budget of trials.

    A resume that wrote the records a tracking server missed says that instead: it did what
    it was run for.
    """
    if result.trials_run:
        return
    if result.records_caught_up:
        _console.line(
            f"no trial left to run; wrote {result.records_caught_up} trial record(s) to MLflow from "
            "Optuna's trials (missing, or left open), and the study's summary"
        )
        return
    limit = experiment.budget.trials
    if "trials" in result.stop_reasons and limit is not None:
        more = result.trials_counted + 10
        _console.warn(
            f"no trial run: the study has {result.trials_counted} trial(s) and its budget is {limit}; "
            f"--trials is the study's total, not extra trials: `autotweak resume {result.study_name} "
            f"--trials {more}` runs 10 more"
        )
    elif "compute" in result.stop_reasons and experiment.budget.compute is not None:
        _console.warn(
            f"no trial run: the study has spent its compute budget ({experiment.budget.compute:g} full "
            "trainings, 'budget.compute'); raise it in the spec file and resume from that file: "
            f"`autotweak resume SPEC.yaml` (the study is '{result.study_name}')"
        )
