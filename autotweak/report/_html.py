"""``autotweak report --html``: one self-contained page (figures inlined) for a study."""

from __future__ import annotations

import base64
import html
import logging
import math
import re
from pathlib import Path

import optuna
from optuna.trial import TrialState

from autotweak._study_view import StudyView
from autotweak.engine._study import ATTR
from autotweak.engine._summary import search_trials
from autotweak.report._plots import curves_plot, history_plot, importance_plot
from autotweak.report._text import StudyReport, build_report

__all__ = ["log_report", "write_html_report"]

_log = logging.getLogger(__name__)

_NOTE_LIMIT = 8000  # MLflow's longest tag value
_IMPORTANCE = "PED-ANOVA"  # the evaluator, named where its numbers are shown
_TOP = 0.1  # the share of completed trials whose parameters PED-ANOVA sets apart (Optuna's default)
_FEW = 5  # top trials below which Optuna's documentation calls PED-ANOVA unstable

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}"
    "img{max-width:100%}.note{color:#666}"
)


def write_html_report(study: optuna.Study, out_dir: Path, *, tracking_uri: str | None = None) -> Path:
    """Write ``report.html``, ``report.md`` and their figures (PNG) into ``out_dir``; return the page.

    The HTML page inlines its figures and stands alone; the Markdown one links the PNG files
    beside it, so the folder reads as it is on a code host.

    Example:
        >>> write_html_report(study, Path("report"))  # doctest: +SKIP
        PosixPath('report/report.html')
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    report = build_report(study, tracking_uri=tracking_uri)
    trials = search_trials(study.get_trials(deepcopy=False))  # the search's: not --ablate's measurements
    maximize = report.direction == "maximize"
    figures = [
        ("Optimization history", history_plot(trials, maximize, report.metric, out_dir / "history.png")),
        ("Learning curves", curves_plot(trials, report.metric, out_dir / "curves.png")),
    ]
    importances, note = _importances(study)
    if importances:
        figure = importance_plot(importances, out_dir / "importance.png", _IMPORTANCE)
        figures.append(("What mattered", figure))
    page = out_dir / "report.html"
    page.write_text(_page(report, trials, figures, importances, note))
    (out_dir / "report.md").write_text(_markdown(report, figures, importances, note))
    return page


def log_report(study: optuna.Study, out_dir: Path, tracking_uri: str, markdown: str) -> str | None:
    """Log ``out_dir`` as ``report/`` of the study's parent run, the Markdown as the run's description.

    MLflow shows the description (tag ``mlflow.note.content``) on the run's Overview tab.

    Returns:
        The parent run's id, or ``None`` when the study has no parent run.
    """
    run_id = study.user_attrs.get(ATTR.RUN_ID)
    if not run_id:
        return None
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    client.log_artifacts(str(run_id), str(out_dir), "report")
    if len(markdown) > _NOTE_LIMIT:
        markdown = (
            markdown[: _NOTE_LIMIT - 100] + "\n\n… (cut here; the whole report: artifact report/report.html)"
        )
    client.set_tag(str(run_id), "mlflow.note.content", markdown)
    return str(run_id)


def _importances(study: optuna.Study) -> tuple[dict[str, float], str]:
    """The search's hyperparameter importances (they sum to 1), and what they rest on, in words."""
    search = StudyView(study, keep=lambda t: not t.user_attrs.get(ATTR.ABLATION))
    complete = search.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 3:
        return {}, ""
    try:
        evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=_TOP)
        found = dict(optuna.importance.get_param_importances(search, evaluator=evaluator))  # type: ignore[arg-type]
    except (RuntimeError, ValueError):  # e.g. a single distinct value per parameter
        _log.info("no hyperparameter importance for study '%s'", study.study_name, exc_info=True)
        return {}, ""
    return found, _importance_note(complete, study.direction == optuna.study.StudyDirection.MAXIMIZE)


def _importance_note(complete: list[optuna.trial.FrozenTrial], maximize: bool) -> str:
    """What PED-ANOVA's numbers say, and on how many top trials they rest (as Optuna picks them)."""
    values = sorted((float(t.value) for t in complete), reverse=maximize)  # type: ignore[arg-type]
    cutoff = values[math.ceil(_TOP * len(values)) - 1]  # ties with the cut-off count as top
    top = sum(1 for v in values if (v >= cutoff if maximize else v <= cutoff))
    few = (
        f" {top} top trials are few (Optuna advises at least {_FEW}): read it as a hint."
        if top < _FEW
        else ""
    )
    return (
        f"How far each parameter's values among the best completed trials (the top {_TOP:.0%}: here "
        f"{top} of {len(values)}; pruned trials do not count) are from its values over all completed "
        f"trials ({_IMPORTANCE}, Optuna's); the shares sum to 1. It says what the best trials have in "
        "common over the space searched, not what each tweak of the best brought over the base config: "
        f"the ablation path estimates that.{few}"
    )


def _page(
    report: StudyReport,
    trials: list[optuna.trial.FrozenTrial],
    figures: list[tuple[str, Path]],
    importances: dict[str, float],
    said: str,
) -> str:
    s = report.summary
    parts = [f"<h1>Study <code>{_e(s.study_name)}</code></h1>"]
    note = report.running_note()
    if note:
        parts.append(f"<p class='note'>{_e(note)}</p>")
    parts.append(_table(["state", "trials"], [[k, str(v)] for k, v in s.counts.items() if v]))
    ran = report.executor_line()
    if ran:
        parts.append(f"<p>{_e(ran)}</p>")
    parts.append(_best(report))
    parts += [section.to_html() for section in report.sections()]
    if importances:
        rows = [[k, f"{v:.3f}"] for k, v in importances.items()]
        title = f"<h2>Hyperparameter importance ({_IMPORTANCE})</h2><p class='note'>{_e(said)}</p>"
        parts.append(title + _table(["parameter", "importance"], rows))
    for title, path in figures:
        data = base64.b64encode(path.read_bytes()).decode()
        parts.append(f"<h2>{_e(title)}</h2><img alt='{_e(title)}' src='data:image/png;base64,{data}'>")
    body = "\n".join(parts)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(s.study_name)}</title>"
        f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


def _markdown(
    report: StudyReport, figures: list[tuple[str, Path]], importances: dict[str, float], said: str
) -> str:
    parts = [report.to_markdown().rstrip(), ""]
    if importances:
        parts += [
            f"## Hyperparameter importance ({_IMPORTANCE})",
            "",
            said,
            "",
            "| parameter | importance |",
            "|---|---|",
        ]
        parts += [f"| {k} | {v:.3f} |" for k, v in importances.items()]
        parts.append("")
    for title, path in figures:
        parts += [f"## {title}", "", f"![{title}]({path.name})", ""]
    return "\n".join(parts)


def _best(report: StudyReport) -> str:
    text = "<h2>Best trial</h2>" + "".join(f"<p>{_bold(_e(line))}</p>" for line in report.headline())
    if report.changed:
        rows = [[k, _fmt(a), _fmt(b)] for k, (a, b) in report.changed.items()]
        text += _table(["tweak", "base", "best"], rows)
    return text


def _bold(escaped: str) -> str:
    """Markdown's ``**bold**`` in an escaped line as HTML."""
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escaped)


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _e(text: object) -> str:
    return html.escape(str(text))
