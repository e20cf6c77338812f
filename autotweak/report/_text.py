"""The first report: best trial against the base config, counts by state, compute."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from autotweak._config import base_values
from autotweak._locations import is_redacted
from autotweak.engine._study import ATTR, summarize
from autotweak.report._ablation import Ablation, ablation_path
from autotweak.report._accounting import (
    ComputeAccount,
    WorkerCost,
    compute_account,
    study_dollars,
    trial_hosts,
    worker_costs,
    workers_section,
)
from autotweak.report._proposals import proposals_section
from autotweak.report._pruning import pruning_section
from autotweak.report._sections import Section
from autotweak.tracking import StudySummary

__all__ = ["StudyReport", "build_report"]


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
    proposals: Section | None = None
    pruning: Section | None = None

    def sections(self) -> list[Section]:
        """The parts after the best trial: ablation, compute, pruning, workers, meta-learner proposals."""
        parts = [] if self.ablation is None else [self.ablation.section(self.metric)]
        if self.account is not None:
            parts.append(self.account.section())
        if self.pruning is not None:
            parts.append(self.pruning)
        if self.workers:
            parts.append(workers_section(self.workers, self.dollars))
        if self.proposals is not None:
            parts.append(self.proposals)
        return parts

    @property
    def gain(self) -> float | None:
        """Best minus base value, signed so that positive is better."""
        best, base = self.summary.best_value, self.summary.base_value
        if best is None or base is None:
            return None
        return best - base if self.direction == "maximize" else base - best

    def to_markdown(self) -> str:
        """The report as Markdown, readable in a terminal too."""
        s = self.summary
        lines = [f"# Study `{s.study_name}`", ""]
        lines.append("| state | trials |")
        lines.append("|---|---|")
        lines += [f"| {state} | {n} |" for state, n in s.counts.items() if n]
        lines.append("")
        if s.counts.get("running"):
            lines += [f"Still running: {s.counts['running']} trial(s) in progress.", ""]
        if s.best_value is None:
            lines.append("No trial has completed yet.")
            return "\n".join([*lines, "", *(part.to_markdown() for part in self.sections())])
        lines.append(f"Best {self.metric}: **{s.best_value:.6g}** (trial {s.best_number}, {self.direction}).")
        if s.base_value is not None:
            gain = self.gain or 0.0
            lines.append(f"Base config: {s.base_value:.6g}; gain of the best over the base: {gain:+.6g}.")
        else:
            lines.append("The base config was not run as a trial, so there is no baseline to compare with.")
        if self.changed:
            lines += ["", "| tweak | base | best |", "|---|---|---|"]
            lines += [f"| {k} | {_fmt(a)} | {_fmt(b)} |" for k, (a, b) in self.changed.items()]
        lines.append("")
        lines += [part.to_markdown() for part in self.sections()]
        return "\n".join(lines)


def build_report(study: optuna.Study, *, tracking_uri: str | None = None) -> StudyReport:
    """Read a study from its storage (and its trials' hosts from MLflow) and build its report.

    Args:
        study: The study, loaded from its Optuna storage.
        tracking_uri: Its MLflow store; else the one the study recorded (unless that held
            a password). Without one, local workers are not told apart by host.

    Example:
        >>> report = build_report(optuna.load_study(study_name="digits-mlp", storage=url))  # doctest: +SKIP
        >>> print(report.to_markdown())  # doctest: +SKIP
    """
    spec = study.user_attrs.get(ATTR.SPEC, {})
    summary = summarize(study)
    base = dict(spec.get("base", {}))
    best = None if summary.best_number is None else study.trials[summary.best_number]
    changed: dict[str, tuple[Any, Any]] = {}
    if best is not None and best.state == TrialState.COMPLETE:
        given = base_values(base, best.params)  # dotted tweaks: nested or flat in the base
        for name, value in best.params.items():
            if name not in given or not _same(given[name], value):
                changed[name] = (given.get(name, "—"), value)
    metric = spec.get("metric", {})
    return StudyReport(
        summary=summary,
        metric=str(metric.get("name", "value")),
        direction=str(metric.get("direction", study.direction.name.lower())),
        base_config=base,
        changed=changed,
        ablation=ablation_path(study, base),
        account=compute_account(study),
        workers=worker_costs(study, trial_hosts(study, _tracking_uri(study, tracking_uri))),
        dollars=study_dollars(study),
        proposals=proposals_section(study),
        pruning=pruning_section(study),
    )


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
