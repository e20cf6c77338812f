"""``autotweak report A B``: studies side by side (e.g. with and without meta-learning)."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import optuna
from matplotlib.figure import Figure
from optuna.trial import TrialState

from autotweak.engine._study import ATTR
from autotweak.engine._summary import attempts_of, frozen_compute, search_trials, steps_of
from autotweak.exceptions import AutotweakError
from autotweak.report._plots import whole_numbers
from autotweak.report._text import StudyReport, build_report

__all__ = ["compare_markdown", "write_comparison"]


def _reports(studies: list[optuna.Study]) -> list[StudyReport]:
    names = [s.study_name for s in studies]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise AutotweakError(f"studies to compare must be different studies, got {', '.join(twice)} twice.")
    reports = [build_report(s) for s in studies]
    goals = {(r.metric, r.direction) for r in reports}
    if len(goals) != 1:
        shown = ", ".join(f"{r.summary.study_name}: {r.direction} {r.metric}" for r in reports)
        raise AutotweakError(f"studies to compare must optimize the same metric the same way, got {shown}.")
    return reports


_COLUMNS = ("complete", "pruned", "failed", "preempted", "interrupted")  # the trials' states compared


def compare_markdown(studies: list[optuna.Study]) -> str:
    """A Markdown table of the studies: counts, best and base values, compute."""
    reports = _reports(studies)
    metric = reports[0].metric
    header = [
        "study",
        "sampler + pruner",
        *_COLUMNS,
        "best",
        "best trial",
        "base",
        "compute (full trainings)",
    ]
    lines = [
        f"# {len(reports)} studies compared ({reports[0].direction} {metric})",
        "",
        "| " + " | ".join(header) + " |",
        "|---|---|" + "---:|" * (len(header) - 2),
    ]
    for study, r in zip(studies, reports, strict=True):
        s = r.summary
        best = "-" if s.best_value is None else f"{s.best_value:.6g}"
        base = "-" if s.base_value is None else f"{s.base_value:.6g}"
        counts = " | ".join(str(s.counts[state]) for state in _COLUMNS)
        lines.append(
            f"| {s.study_name} | {_setup(study)} | {counts} "
            f"| {best} | {s.best_number if s.best_number is not None else '-'} | {base} | {s.compute:.2f} |"
        )
    return "\n".join(lines)


def _setup(study: optuna.Study) -> str:
    """The study's sampler and pruner as its spec names them (Optuna's classes for a plain study)."""
    spec = study.user_attrs.get(ATTR.SPEC)
    if spec:
        return f"{spec['sampler']['name']} + {spec['pruner']['name']}"
    return f"{type(study.sampler).__name__} (plain Optuna)"


def write_comparison(studies: list[optuna.Study], out_dir: Path) -> Path:
    """Write ``compare.html``: the table and best-so-far against trials and against compute."""
    reports = _reports(studies)
    out_dir.mkdir(parents=True, exist_ok=True)
    figure = _best_so_far(
        studies, reports[0].direction == "maximize", reports[0].metric, out_dir / "compare.png"
    )
    table = _markdown_table_to_html(compare_markdown(studies))
    image = base64.b64encode(figure.read_bytes()).decode()
    page = out_dir / "compare.html"
    page.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>comparison</title></head>"
        "<body style='font-family:system-ui,sans-serif;max-width:900px;margin:2em auto'>"
        f"{table}<h2>Best so far</h2><img style='max-width:100%' src='data:image/png;base64,{image}'>"
        "</body></html>\n"
    )
    return page


def _best_so_far(studies: list[optuna.Study], maximize: bool, metric: str, path: Path) -> Path:
    fig = Figure(figsize=(10, 3.5))
    by_trials, by_compute = fig.subplots(1, 2)
    for study in studies:
        every = study.get_trials(deepcopy=False)
        trials = [t for t in search_trials(every) if t.state.is_finished()]
        attempts = attempts_of(every)
        steps = steps_of(study)
        best: list[float] = []
        spent: list[float] = []
        total = 0.0
        for trial in trials:
            total += frozen_compute(trial, steps, attempts)
            current = best[-1] if best else math.nan
            if trial.state == TrialState.COMPLETE and trial.value is not None:
                current = trial.value if math.isnan(current) else _pick(maximize, current, trial.value)
            best.append(current)
            spent.append(total)
        by_trials.plot(range(1, len(best) + 1), best, label=study.study_name, drawstyle="steps-post")
        by_compute.plot(spent, best, label=study.study_name, drawstyle="steps-post")
    by_trials.set_xlabel("trials")
    whole_numbers(by_trials)
    by_compute.set_xlabel("compute (full trainings)")
    for ax in (by_trials, by_compute):
        ax.set_ylabel(f"best {metric}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _pick(maximize: bool, a: float, b: float) -> float:
    return max(a, b) if maximize else min(a, b)


def _markdown_table_to_html(markdown: str) -> str:
    lines = [line for line in markdown.splitlines() if line.strip()]
    title = html.escape(lines[0].lstrip("# "))
    cells = [
        [html.escape(c.strip()) for c in line.strip("|").split("|")]
        for line in lines[1:]
        if "---" not in line
    ]
    head = "".join(f"<th>{c}</th>" for c in cells[0])
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells[1:])
    return f"<h1>{title}</h1><table border='1' cellpadding='4'><tr>{head}</tr>{body}</table>"
