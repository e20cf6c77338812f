"""What is said of a study none of whose trials completed (a broken objective, lost machines) or ran.

``optimize`` warns of it, and returns the first failure on its result; the CLI, which says
the result itself (with its own resume command), drops the warning: a record marked
:data:`IN_RESULT` holds nothing the result does not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import optuna

from autotweak.engine._loop import FAIL_FAST_REASON
from autotweak.engine._study import ATTR, state_of
from autotweak.engine._worker import WorkerResult
from autotweak.spec import Budget
from autotweak.tracking import StudySummary

__all__ = [
    "IN_RESULT",
    "RESUME",
    "first_failure",
    "go_on",
    "say_if_none_completed",
    "say_if_none_run",
    "workers_stopped",
]

_log = logging.getLogger(__name__)

RESUME = "optimize(..., resume=True) or `autotweak resume {name}`"
IN_RESULT = "autotweak_in_result"  # a log record's attribute: StudyResult holds what it says


def first_failure(study: optuna.Study) -> tuple[int, str] | None:
    """The number of the study's first failed trial and the first line of why (300 characters at most)."""
    failed = [t for t in study.get_trials(deepcopy=False) if state_of(t) == "failed"]
    if not failed:
        return None
    first = min(failed, key=lambda t: t.number)
    reason = str(first.user_attrs.get(ATTR.FAILURE, "no reason recorded")).splitlines()[0][:300].rstrip(".")
    return first.number, reason


def go_on(
    name: str, stop_reasons: list[str], trials_counted: int, command: Callable[[str], str]
) -> tuple[str, str]:
    """Why a plain resume of study ``name`` runs nothing (``""``: it runs trials), and the one that runs more.

    A study whose trials spent ``budget.trials`` (``trials_counted`` of them) runs more with
    ``--trials`` (the study's total); one that spent ``budget.compute``, from a spec file
    that raises it. ``command`` gives the resume command of a study name or a spec file.

    Example:
        >>> go_on("wine", ["trials"], 2, lambda study: f"autotweak resume {study}")[1]
        'autotweak resume wine --trials 4'
    """
    if "trials" in stop_reasons and trials_counted:
        return (
            f" (its {trials_counted} trial(s) spent its budget; --trials is the study's total)",
            f"{command(name)} --trials {2 * trials_counted}",
        )
    if "compute" in stop_reasons:
        return (
            f" (its trials spent its compute budget: raise 'budget.compute' in the spec file and resume "
            f"from that file; the study is '{name}')",
            command("SPEC.yaml"),
        )
    return "", command(name)


def workers_stopped(results: list[WorkerResult]) -> str:
    """How many of ``optimize``'s workers stopped on failures alone (``""``: none), as the warning says it."""
    fail_fast = sum(r.stop_reason == FAIL_FAST_REASON for r in results)
    return f"{fail_fast} worker(s) stopped because {FAIL_FAST_REASON}" if fail_fast else ""


def say_if_none_completed(
    study: optuna.Study,
    summary: StudySummary,
    *,
    stopped: str = "",
    fix: str = "the objective",
    resume: str | None = None,
    spent: str = "",
) -> tuple[int, str] | None:
    """Warn of a study whose trials all failed: ``optimize`` returns, with nothing found.

    The CLI exits 1 then; a script gets ``best_value`` ``None`` and this warning, which
    names the first failure: usually a broken objective, which every trial repeats. Trials
    whose machines went away (preempted) are no failure of the objective: they are said
    apart, and alone they ask for a resume, not a fix. The ask/tell ``Study`` names its
    own ``fix`` (the training loop) and ``resume`` (else :data:`RESUME`), and says its
    fail-fast stop as its user reads it (``stopped``: what stopped on failures alone).
    ``spent`` says why a plain resume would run nothing, and ``resume`` then names the one
    that runs more (see :func:`go_on`).

    Returns:
        The first failure (see :func:`first_failure`) when the warning named one, else ``None``.
    """
    resume = RESUME.format(name=study.study_name) if resume is None else resume
    counts = summary.counts
    if counts["complete"] or counts["pruned"]:
        return None
    preempted = counts["preempted"]
    lost = ""
    if preempted:
        lost = f", {preempted} preempted (their machines went away; not the objective's fault)"
    first = first_failure(study) if counts["failed"] else None
    if first is None:
        if preempted:
            _log.warning(
                "study '%s': no trial completed%s; resume the study to run them again%s: %s",
                study.study_name,
                lost,
                spent,
                resume,
            )
        return None
    _log.warning(
        "study '%s': no trial completed, %d failed%s%s; the first, trial %d, failed with: %s. Fix %s, "
        "then resume the study%s: %s",
        study.study_name,
        counts["failed"],
        f" ({stopped})" if stopped else "",
        lost,
        *first,
        fix,
        spent,
        resume,
        extra={IN_RESULT: True},
    )
    return first


def say_if_none_run(name: str, stop_reasons: list[str], trials_counted: int, budget: Budget) -> None:
    """Warn that a resume ran no trial because the study had spent its budget already.

    A notebook cell ``optimize(spec, resume=True)`` run again returned the same result in
    silence, as if it had searched on. The CLI says it in its own words (see
    :func:`autotweak.cli._study_end.say_budget_spent`), and drops this warning.
    """
    if "trials" in stop_reasons and budget.trials is not None:
        _log.warning(
            "study '%s': no trial run: the study has %d trial(s) and its budget is %d; 'budget.trials' is "
            "the study's total, not extra trials: set it to %d and resume to run 10 more",
            name,
            trials_counted,
            budget.trials,
            trials_counted + 10,
        )
    elif "compute" in stop_reasons and budget.compute is not None:
        _log.warning(
            "study '%s': no trial run: the study has spent its compute budget (%g full trainings, "
            "'budget.compute'); raise it and resume to run more",
            name,
            budget.compute,
        )
