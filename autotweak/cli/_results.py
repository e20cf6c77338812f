"""``autotweak status``, ``best`` and ``report``: what a study found."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from autotweak._locations import missing_default_storage, resolve_tracking_uri, storage_url_of
from autotweak.cli._main import _console
from autotweak.cli._stores import (
    open_storage,
    option_label,
    reading,
    storage_option,
    stores,
    tracking_option,
)
from autotweak.exceptions import AutotweakError

if TYPE_CHECKING:
    import optuna

    from autotweak.tracking._records import StudySummary

__all__ = ["best", "report", "status"]


@click.command()
@click.argument("study", required=False)
@storage_option
def status(study: str | None, storage: str | None) -> None:
    """List the studies, or show how STUDY stands."""
    from autotweak.engine._study import load_study
    from autotweak.engine._summary import summarize

    _console.configure_logging(0)  # a storage restart is said in a line, Optuna's SQL is not
    if study is None and _said_no_default_storage(storage):
        return
    opened = open_storage(storage, study)
    if study is None:
        for line in reading(lambda: _listing(opened), "listing the studies"):
            _console.line(line)
        return
    summary = reading(lambda: summarize(load_study(study, opened)), f"reading study '{study}'")
    counts = ", ".join(f"{n} {state}" for state, n in summary.counts.items() if n)
    best = "-" if summary.best_value is None else f"{summary.best_value:.6g} (trial {summary.best_number})"
    _console.line(
        f"{study}: {counts or 'no trials'}; best {best}; compute {summary.compute:.2f} full trainings"
    )


def _listing(opened: optuna.storages.BaseStorage) -> list[str]:
    """One line per study of the storage, as the report counts them: the queued trials said apart."""
    import optuna

    from autotweak.engine._summary import summarize

    names = [s.study_name for s in opened.get_all_studies()]
    lines = [] if names else [f"no studies in {stores['storage'][1]}"]
    for name in names:
        found = summarize(optuna.load_study(study_name=name, storage=opened))
        best = "-" if found.best_value is None else f"{found.best_value:.6g}"
        queued = found.counts.get("waiting", 0)
        ran = sum(found.counts.values()) - queued
        more = f" ({queued} queued)" if queued else ""
        lines.append(f"{name}: {ran} trial{'' if ran == 1 else 's'}{more}, best {best}")
    return lines


def _said_no_default_storage(storage: str | None) -> bool:
    """Say "no studies" when the storage is the embedded default and does not exist yet (not creating it)."""
    path = missing_default_storage(storage_url_of(storage))
    if path is not None:
        _console.line(
            f"no studies: the default storage {path} does not exist yet (`autotweak optimize` creates "
            "it); to list another storage, give --storage or $AUTOTWEAK_STORAGE"
        )
    return path is not None


@click.command()
@click.argument("study")
@storage_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def best(study: str, storage: str | None, as_json: bool) -> None:
    """Print the best trial of STUDY: its value and tweaks (with --json, its full config too)."""
    from autotweak.engine._study import load_study
    from autotweak.engine._summary import best_config, metric_of, summarize

    _console.configure_logging(0)
    opened = open_storage(storage, study)

    def read() -> tuple[StudySummary, dict[str, Any], tuple[str, str]]:
        loaded = load_study(study, opened)
        summary = summarize(loaded)
        return summary, best_config(loaded, summary), metric_of(loaded)  # config: base + tweaks

    summary, config, (metric, direction) = reading(read, f"reading study '{study}'")
    if summary.best_number is None:
        raise AutotweakError(f"study '{study}' has no completed trial yet.")
    if as_json:
        payload = {
            "trial": summary.best_number,
            "metric": metric,
            "direction": direction,
            "value": summary.best_value,
            "base_value": summary.base_value,  # null: no complete trial of the base config
            "config": config,
            "params": summary.best_params,
        }
        _console.line(json.dumps(payload, indent=2, default=str))
        return
    base = "" if summary.base_value is None else f"; base config {summary.base_value:.6g}"
    _console.line(f"trial {summary.best_number}: {metric} {summary.best_value:.6g} ({direction}{base})")
    for key, value in summary.best_params.items():
        _console.line(f"  {key}: {value}")


@click.command()
@click.argument("studies", nargs=-1, required=True)
@storage_option
@tracking_option
@click.option(
    "--html",
    "html_dir",
    type=click.Path(file_okay=False),
    help="Also write report.html and report.md (compare.html for several studies) and their figures here.",
)
@click.option(
    "--ablate",
    type=click.IntRange(min=0),
    default=0,
    help="Run up to N extra trials that measure the ablation path's estimated steps first.",
)
@click.option("--register", "model_name", help="Register the best trial's logged model under this name.")
def report(
    studies: tuple[str, ...],
    storage: str | None,
    tracking_uri: str | None,
    html_dir: str | None,
    ablate: int,
    model_name: str | None,
) -> None:
    """Print what won in a study and by how much over the base config; several studies side by side.

    With --html, one study's page is also logged to its parent MLflow run, under report/.
    """
    from autotweak.engine._study import load_study

    _console.configure_logging(0)
    if html_dir is not None:
        _writable_folder(html_dir)
    url_storage = open_storage(storage, studies[0])
    url = stores["storage"][1]
    if tracking_uri:
        stores["tracking"] = (option_label("--tracking-uri"), tracking_uri)
    loaded = reading(lambda: [load_study(name, url_storage) for name in studies], "loading the studies")
    if len(loaded) == 1:
        if ablate:
            from autotweak.report import run_ablation

            before = _ablation_trials(loaded[0])
            ran = run_ablation(loaded[0], ablate, storage=url, tracking_uri=tracking_uri)
            _console.line(_ablation_said(loaded[0], ran, before))
        if model_name:
            from autotweak.report import register_best_model

            version = register_best_model(loaded[0], model_name, _study_tracking_uri(loaded[0], tracking_uri))
            _console.line(f"registered the best trial's model as '{model_name}' version {version.version}")
        _report_one(loaded[0], tracking_uri, html_dir)
        return
    if ablate or model_name:
        raise AutotweakError("--ablate and --register work on one study at a time, got several studies.")
    from autotweak.report import compare_markdown, write_comparison  # seconds: once the studies are found

    _console.line(reading(lambda: compare_markdown(loaded), "reading the studies"))
    if html_dir is not None:
        started = time.time()
        page = reading(lambda: write_comparison(loaded, Path(html_dir)), "reading the studies")
        _console.line(_wrote(page, started))


def _writable_folder(html_dir: str) -> None:
    """Make the --html folder now: one that cannot be made is said before the report, not as a traceback."""
    from autotweak._validation import Where

    try:
        Path(html_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        rule = f"must be a folder that can be made and written ({type(exc).__name__}: {exc.strerror})"
        raise Where("--html").fail(rule, html_dir) from None


def _ablation_trials(study: optuna.Study) -> dict[int, str]:
    """The study's ``report --ablate`` trials: number -> state."""
    from autotweak.engine._study import ATTR, state_of

    return {
        t.number: state_of(t) for t in study.get_trials(deepcopy=False) if t.user_attrs.get(ATTR.ABLATION)
    }


def _ablation_said(study: optuna.Study, ran: int, before: dict[int, str]) -> str:
    """``ran N ablation trial(s)``, with how they ended, or why none ran."""
    if not ran:
        return "ran 0 ablation trials: no value of the ablation path is left to measure (see the report)"
    new = [state for number, state in _ablation_trials(study).items() if number not in before]
    ended = ", ".join(f"{n} {state}" for state, n in Counter(new).most_common())
    return f"ran {ran} ablation trial(s): {ended}"


def _wrote(page: Path, since: float) -> str:
    """``wrote PAGE``, with the other files written next to it since ``since`` (the figures)."""
    others = sorted(
        p.name for p in page.parent.iterdir() if p != page and p.is_file() and p.stat().st_mtime >= since - 1
    )
    return f"wrote {page}" + (f" and, next to it, {', '.join(others)}" if others else "")


def _report_one(study: optuna.Study, tracking_uri: str | None, html_dir: str | None) -> None:
    from autotweak.report import build_report

    def read() -> tuple[str, str]:
        uri = _study_tracking_uri(study, tracking_uri)
        return uri, build_report(study, tracking_uri=uri).to_markdown()

    what = f"reading study '{study.study_name}'"
    uri, markdown = reading(read, what)
    _console.line(markdown)
    if html_dir is None:
        return
    from autotweak.report import log_report, write_html_report  # Matplotlib: for the page's figures

    started = time.time()
    page = reading(lambda: write_html_report(study, Path(html_dir), tracking_uri=uri), what)
    _console.line(_wrote(page, started))
    run_id = reading(lambda: log_report(study, Path(html_dir), uri, markdown), what)
    if run_id:
        _console.line(
            f"logged it to the study's MLflow run {run_id} (artifacts: report/, and its description)"
        )


def _study_tracking_uri(study: optuna.Study, explicit: str | None) -> str:
    """The MLflow store of ``study``: the option or its variable, else the one the study recorded."""
    from autotweak.engine._study import ATTR

    recorded = str(study.user_attrs.get(ATTR.TRACKING_URI) or "")
    if explicit or not recorded or "***" in recorded:
        return resolve_tracking_uri(explicit)
    return recorded
