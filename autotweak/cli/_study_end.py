"""What ``optimize`` and ``resume`` say as a study ends: how to go on, why nothing completed, its cost."""

from __future__ import annotations

import functools
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
    "completed_none",
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
    """Drop the engine's warnings of a study none of whose trials completed: the CLI says it once, at the end.

    A study whose every trial failed was said twice: the engine's warning with the first
    failure, then the CLI's error; :func:`none_completed` says all of both, with the resume
    command of this CLI's options (``--executor``).
    """

    def keep(record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING

    logger = logging.getLogger("autotweak.engine._none_completed")
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def completed_none(result: StudyResult) -> bool:
    """Whether the study has trials, failed or preempted, and none of them completed (or was pruned)."""
    states = result.summary.counts
    ended = states.get("failed") or states.get("preempted")
    return bool(ended) and not states.get("complete") and not states.get("pruned")


def none_completed(result: StudyResult, options: dict[str, Any]) -> str:
    """The error for a study none of whose trials completed: the first failure, and what to do.

    A run that ran no trial (the study's failed trials spent its budget in earlier
    sessions) says so, and names the first failure all the same, read from the storage.

    Example:
        ``every trial of study 'wine' failed (2 failed, none completed); the first, trial 0,
        failed with: KeyError: 'optim'; where an exception was raised, its traceback is kept
        in the trial's MLflow run (artifact traceback.txt; `autotweak ui` shows it). Fix the
        objective, then resume the study (its 2 trial(s) spent its budget; --trials is the
        study's total): `autotweak resume wine --trials 4```
    """
    name, states = result.study_name, result.summary.counts
    failed, lost = states.get("failed", 0), states.get("preempted", 0)
    said = "" if result.trials_run else "no trial run in this session, and "
    said += _what_ended(name, failed, lost) + _fail_fast(result)
    first = result.first_failure or (_first_failure(result) if failed else None)
    if first is not None:
        said += f"); the first, trial {first[0]}, failed with: {first[1]}"
    elif failed:  # the storage did not answer for it
        said += f"); `autotweak report {name}` lists each failure"
    else:
        said += ")"
    spent, command = _go_on(result, options)
    if not failed:  # their machines went away: nothing to fix
        return f"{said}; resume the study{spent}: `{command}`"
    uri = result.tracking_uri or ""
    shows = f"the MLflow UI at {redact(uri)}" if on_server(uri) else "`autotweak ui`"
    return (
        f"{said}; where an exception was raised, its traceback is kept in the trial's MLflow run "
        f"(artifact traceback.txt; {shows} shows it). Fix the objective, then resume the study{spent}: "
        f"`{command}`"
    )


def _go_on(result: StudyResult, options: dict[str, Any]) -> tuple[str, str]:
    """Why a plain resume would run nothing (``""``: it would run trials), and the command that runs more."""
    from autotweak.engine._none_completed import go_on

    command = functools.partial(resume_command, options=options)
    return go_on(result.study_name, result.stop_reasons, result.trials_counted, command)


def _what_ended(name: str, failed: int, lost: int) -> str:
    """How the trials of a study that completed none ended, up to the open parenthesis's content."""
    if not lost:
        return f"every trial of study '{name}' failed ({failed} failed, none completed"
    # their machines went away: not failures, so not every trial failed
    counted = f"{failed} failed, " if failed else ""
    return (
        f"no trial of study '{name}' completed ({counted}{lost} preempted: their machines went away, "
        "not the objective's fault"
    )


def _fail_fast(result: StudyResult) -> str:
    from autotweak.engine._loop import FAIL_FAST_REASON

    stopped = sum(reason == FAIL_FAST_REASON for reason in result.stop_reasons)
    return f"; {stopped} worker(s) stopped because {FAIL_FAST_REASON}" if stopped else ""


def _first_failure(result: StudyResult) -> tuple[int, str] | None:
    """The study's first failure, read from its storage: this run ran no trial, so it saw none fail."""
    import optuna

    from autotweak.engine._none_completed import first_failure
    from autotweak.engine._storage import read_storage

    try:
        study = optuna.load_study(study_name=result.study_name, storage=read_storage(result.storage))
        return first_failure(study)
    except Exception:  # the error says where to read the failures instead; never fail it over this
        return None


def say_cost(executor: BaseExecutor | None, study: str) -> None:
    """What the study's instances cost, when the executor bills them (aws-spot)."""
    cost = getattr(executor, "cost", None)
    if cost is not None:
        _console.line(
            f"instances cost {usd(cost.session_usd)} this session, {usd(cost.study_usd)} for study "
            f"'{study}' in all{cost.note()}"
        )


def say_budget_spent(experiment: Experiment, result: StudyResult) -> None:
    """Say why a run started no trial when the study already had its budget of trials.

    A resume that wrote the records a tracking server missed says that instead: it did what
    it was run for.
    """
    if result.trials_run or completed_none(result):  # the latter: the error at the end says it
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
