"""The first report: best trial against the base config, counts by state, compute."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from autotweak._locations import is_redacted
from autotweak._study_view import StudyView
from autotweak.engine._study import ATTR, state_of
from autotweak.engine._summary import metric_of, search_trials, summarize
from autotweak.report._ablation import Ablation, ablation_path
from autotweak.report._accounting import (
    ComputeAccount,
    WorkerCost,
    compute_account,
    study_dollars,
    study_estimate,
    worker_costs,
    workers_section,
)
from autotweak.report._conditional import base_tweaks
from autotweak.report._failures import failure_of, failures_section
from autotweak.report._hosts import trial_hosts, trial_types
from autotweak.report._proposals import proposals_section
from autotweak.report._pruning import pruning_section
from autotweak.report._sections import Section
from autotweak.report._sessions import Placement, placement_of
from autotweak.tracking import StudySummary

__all__ = ["StudyReport", "build_report"]

_NO_BASELINE = "The base config was not run as a trial, so there is no baseline to compare with."


@dataclass(frozen=True)
class StudyReport:
    """What a person wants to know first about a study."""

    summary: StudySummary
    metric: str
    direction: str
    base_config: dict[str, Any]
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    ablation: Ablation | None = None
    account: ComputeAccount | None = None
    workers: list[WorkerCost] = field(default_factory=list)
    dollars: float | None = None
    dollars_estimate: str = ""  # what the study's dollars include: upper bounds of unread prices
    proposals: Section | None = None
    pruning: Section | None = None
    failures: Section | None = None
    baseline: str | None = None  # what became of the base config's trial when it did not complete
    tied: list[int] = field(default_factory=list)  # other trials with the best value
    placement: Placement | None = None  # where its trials ran: its sessions, or its executors if older

    def sections(self) -> list[Section]:
        """After the best trial: failures, ablation, compute, pruning, workers, sessions, proposals."""
        parts = [] if self.failures is None else [self.failures]
        if self.ablation is not None:
            parts.append(self.ablation.section(self.metric))
        if self.account is not None:
            parts.append(self.account.section())
        if self.pruning is not None:
            parts.append(self.pruning)
        if self.workers:
            parts.append(workers_section(self.workers, self.dollars, self.dollars_estimate))
        sessions = None if self.placement is None else self.placement.section()
        if sessions is not None:
            parts.append(sessions)
        if self.proposals is not None:
            parts.append(self.proposals)
        return parts

    def _against_base(self) -> str:
        """The best against the base config in words: ``"the best is 0.96 lower (better)"``."""
        best, base, gain = self.summary.best_value, self.summary.base_value, self.gain
        if best is None or base is None or gain is None or gain == 0:
            return "the best is the same"
        way = "higher" if best > base else "lower"
        return f"the best is {abs(best - base):.6g} {way} ({'better' if gain > 0 else 'worse'})"

    @property
    def gain(self) -> float | None:
        """Best minus base value, signed so that positive is better."""
        best, base = self.summary.best_value, self.summary.base_value
        if best is None or base is None:
            return None
        return best - base if self.direction == "maximize" else base - best

    def running_note(self) -> str | None:
        """A warning that the study was still running when the report was built, or ``None``."""
        running = self.summary.counts.get("running", 0)
        if not running:
            return None
        return (
            f"Still running: {running} trial(s) in progress; this report is a snapshot of the study "
            "as it stood (run it again once the study has stopped)."
        )

    def executor_line(self) -> str | None:
        """Where it ran (``Ran on processes (workers=2) and 1 joined worker (host x): 22 + 18 trials.``)."""
        return None if self.placement is None else self.placement.line()

    def headline(self) -> list[str]:
        """The sentences on the best trial and the base config; Markdown (the best value in bold)."""
        s = self.summary
        if s.best_value is None:
            unfinished = s.counts.get("running", 0) + s.counts.get("waiting", 0)
            first = "No trial has completed yet." if unfinished else "No trial completed."
            return [first, *([self.baseline] if self.baseline else [])]
        ties = f"; tied with trial(s) {', '.join(map(str, self.tied))}" if self.tied else ""
        best = f"Best {self.metric}: **{s.best_value:.6g}** (trial {s.best_number}{ties}; {self.direction})."
        if s.base_value is not None:
            return [best, f"Base config: {s.base_value:.6g}; {self._against_base()}."]
        return [best, self.baseline or _NO_BASELINE]

    def to_markdown(self) -> str:
        """The report as Markdown, readable in a terminal too."""
        s = self.summary
        lines = [f"# Study `{s.study_name}`", ""]
        lines.append("| state | trials |")
        lines.append("|---|---|")
        lines += [f"| {state} | {n} |" for state, n in s.counts.items() if n]
        lines.append("")
        note = self.running_note()
        if note:
            lines += [note, ""]
        ran = self.executor_line()
        if ran:
            lines += [ran, ""]
        lines += self.headline()
        if self.changed:
            lines += ["", "| tweak | base | best |", "|---|---|---|"]
            lines += [f"| {k} | {_fmt(a)} | {_fmt(b)} |" for k, (a, b) in self.changed.items()]
        lines.append("")
        lines += [part.to_markdown() for part in self.sections()]
        return "\n".join(lines)


def build_report(study: optuna.Study, *, tracking_uri: str | None = None) -> StudyReport:
    """Read a study from its storage and build its report (MLflow only for hosts Optuna lacks).

    Args:
        study: The study, loaded from its Optuna storage.
        tracking_uri: Its MLflow store; else the one the study recorded (unless that held
            a password), asked only for the hosts of trials that name no session (a study
            older than its sessions' record) or ran on spot instances. Without one, those are
            not told apart by host.

    Example:
        >>> report = build_report(optuna.load_study(study_name="digits-mlp", storage=url))  # doctest: +SKIP
        >>> print(report.to_markdown())  # doctest: +SKIP
    """
    # One read of the trials for every section: a study still running changes between reads.
    study = StudyView(study, trials=study.get_trials(deepcopy=False))  # type: ignore[assignment]
    spec = study.user_attrs.get(ATTR.SPEC, {})
    summary = summarize(study)
    base = dict(spec.get("base", {}))
    best = None if summary.best_number is None else study.trials[summary.best_number]
    changed: dict[str, tuple[Any, Any]] = {}
    if best is not None and best.state == TrialState.COMPLETE:
        given = base_tweaks(study, base, best.params)  # dotted tweaks: nested or flat in the base
        for name, value in best.params.items():
            if name not in given or not _same(given[name], value):
                changed[name] = (given.get(name, "—"), value)
        for name, value in given.items():  # a conditional tweak the best leaves inactive, the base not
            if name not in best.params:
                changed[name] = (value, "—")
    metric, direction = metric_of(study)
    return StudyReport(
        summary=summary,
        metric=metric,
        direction=direction,
        base_config=base,
        changed=changed,
        ablation=ablation_path(study, base),
        account=compute_account(study),
        workers=_workers(study, tracking_uri),
        dollars=study_dollars(study),
        dollars_estimate=study_estimate(study),
        proposals=proposals_section(study),
        pruning=pruning_section(study),
        failures=failures_section(study),
        baseline=_baseline_fate(study),
        tied=_tied(study, summary),
        placement=placement_of(study.user_attrs, study.get_trials(deepcopy=False)),
    )


def _baseline_fate(study: optuna.Study) -> str | None:
    """What became of the base config's trial when it did not complete (``None`` otherwise)."""
    marked = [t for t in search_trials(study.get_trials(deepcopy=False)) if t.user_attrs.get(ATTR.BASELINE)]
    if not marked or any(t.state == TrialState.COMPLETE for t in marked):
        return None
    last = max(marked, key=lambda t: t.number)
    state = state_of(last)
    if state in ("running", "waiting"):
        return f"The base config (trial {last.number}) is {state}: no baseline to compare with yet."
    failure = failure_of(last)
    reason = f" ({failure if len(failure) <= 200 else failure[:197] + '...'})" if state == "failed" else ""
    return f"The base config (trial {last.number}) {state}{reason}, so there is no baseline to compare with."


def _tied(study: optuna.Study, summary: StudySummary) -> list[int]:
    """The search's other completed trials with exactly the best value."""
    if summary.best_value is None:
        return []
    return [
        t.number
        for t in search_trials(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        if t.value == summary.best_value and t.number != summary.best_number
    ]


def _workers(study: optuna.Study, tracking_uri: str | None) -> list[WorkerCost]:
    """Time and dollars per worker type: a trial's instance type where its machine says, else its host."""
    hosts = trial_hosts(study, _tracking_uri(study, tracking_uri))
    types = trial_types(study.user_attrs, study.get_trials(deepcopy=False), hosts)
    return worker_costs(study, hosts, types=types)


def _tracking_uri(study: optuna.Study, explicit: str | None) -> str | None:
    recorded = study.user_attrs.get(ATTR.TRACKING_URI)
    if explicit:
        return explicit
    return str(recorded) if recorded and not is_redacted(str(recorded)) else None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    return bool(a == b)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
