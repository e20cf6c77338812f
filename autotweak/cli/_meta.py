"""``autotweak meta fit`` and ``autotweak suggest``: build a meta-model, ask it for proposals."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from autotweak._locations import redact
from autotweak.cli._console import Console
from autotweak.cli._stores import usable_storages, usable_tracking_uris
from autotweak.exceptions import AutotweakError, TrackingError

if TYPE_CHECKING:
    from autotweak.meta import Histories
    from autotweak.space import SearchSpace

__all__ = ["meta", "suggest"]

_console = Console()
_MLFLOW_FIX = "start it, or pass the URI of one that runs as --mlflow"


@click.group()
def meta() -> None:
    """Build meta-models from past experiment histories."""


@meta.command("fit")
@click.option(
    "--space", "space_ref", required=True, help="A library space (hgb, mlp...), a space file, or a spec."
)
@click.option(
    "--table",
    "tables",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Long-format table.",
)
@click.option(
    "--mlflow",
    "tracking_uris",
    multiple=True,
    callback=usable_tracking_uris,
    help="MLflow tracking URI to read runs from (repeat).",
)
@click.option(
    "--experiment", "experiments", multiple=True, help="MLflow experiment name (repeat; default: all)."
)
@click.option(
    "--task-key", help="MLflow run tag or param that names each run's task (default: its experiment)."
)
@click.option(
    "--optuna",
    "storages",
    multiple=True,
    callback=usable_storages,
    help="Optuna storage URL to read studies from (repeat).",
)
@click.option("--study", "studies", multiple=True, help="Optuna study name (repeat; default: all).")
@click.option(
    "--metric", help="Metric of the MLflow runs (default: the spec's) or value column of the tables."
)
@click.option("--table-metric", help="Value column of the tables, where it is not --metric's name.")
@click.option(
    "--direction",
    type=click.Choice(["maximize", "minimize"]),
    help="The metric's direction where a source does not record it (default: the spec's, else maximize).",
)
@click.option(
    "--rename",
    "renames",
    multiple=True,
    metavar="RECORDED=NAME",
    help="Map a recorded param name onto the space's (repeat).",
)
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Model file to write (.npz).")
def meta_fit(
    space_ref: str,
    tables: tuple[str, ...],
    tracking_uris: tuple[str, ...],
    experiments: tuple[str, ...],
    task_key: str | None,
    storages: tuple[str, ...],
    studies: tuple[str, ...],
    metric: str | None,
    table_metric: str | None,
    direction: str | None,
    renames: tuple[str, ...],
    out: str,
) -> None:
    """Fit a meta-model on past histories and save it (a versioned .npz file).

    Sources can be mixed: long-format tables (benchmarks/BENCHMARK.md's format or the generic one,
    see docs/histories.md), MLflow experiments (any runs with params and the metric),
    Optuna studies. Params are mapped onto the space (--rename for renamed ones; with a
    spec as --space, a param a record lacks is taken from the spec's base config).
    Records that cannot be used are skipped and counted by reason.
    """
    from autotweak.meta import Histories, fit_meta_model, read_mlflow, read_optuna, read_table
    from autotweak.meta._fit import check_unconditional
    from autotweak.meta._mlflow_source import TrackingServerError

    _console.configure_logging(0)  # the readers' and the fit's warnings: a param learned nothing of
    target = _target_of(space_ref)
    space = target.space
    check_unconditional(space)  # before reading: no history can make such a space servable
    mapping = dict(_rename(r) for r in renames)
    orientation: Any = direction or target.direction or "maximize"
    common: dict[str, Any] = {"space": space, "renames": mapping, "base": target.base}
    runs_metric = metric or target.metric or ""
    if tracking_uris and not runs_metric:
        raise AutotweakError("--metric is needed to read MLflow runs (or pass a spec as --space).")
    if not (tables or tracking_uris or storages):
        raise AutotweakError(
            f"name at least one history source: --table, --mlflow or --optuna{_studies_here()}."
        )
    _check_sources_named(tables, tracking_uris, storages, experiments, studies, task_key, table_metric)
    parts: list[Histories] = []
    for table in tables:
        read = read_table(table, metric=table_metric or metric, direction=orientation, **common)
        parts.append(_said(f"table {table}", read))
    for uri in tracking_uris:
        names = list(experiments) or None
        try:
            with _console.counting(f"  mlflow {redact(uri)}", "runs") as progress:
                read = read_mlflow(
                    uri,
                    names,
                    metric=runs_metric,
                    direction=orientation,
                    task_key=task_key,
                    curves=False,  # the meta-model learns from final values: one request per run spared
                    progress=progress,
                    **common,
                )
        except TrackingServerError as exc:  # its advice names the Python argument: say the option
            raise TrackingError(exc.advising(_MLFLOW_FIX)) from None
        parts.append(_said(f"mlflow {redact(uri)}", read))
    for url in storages:
        parts.append(_said(f"optuna {redact(url)}", read_optuna(url, list(studies) or None, **common)))
    histories = Histories.combine(parts)
    model = fit_meta_model(histories, space)
    path = model.save(out)
    _console.line(
        f"read {len(histories.tasks)} task(s), {histories.n_trials} trial(s); {histories.skipped.summary()}"
    )
    scored = int(model.n_trials.sum())
    unscored = histories.n_trials - scored
    left = f", {unscored} other trial(s) not scored (not complete, or left out above)" if unscored else ""
    _console.line(
        f"fit on {model.n_tasks} task(s), {scored} complete trial(s){left} ({model.info['skipped_tasks']}); "
        f"{len(model.units)} candidates"
    )
    _console.line(f"wrote {path}")


def _check_sources_named(
    tables: tuple[str, ...],
    tracking_uris: tuple[str, ...],
    storages: tuple[str, ...],
    experiments: tuple[str, ...],
    studies: tuple[str, ...],
    task_key: str | None,
    table_metric: str | None,
) -> None:
    """Refuse an option of a kind of source that no option names: it would be ignored."""
    needs = [
        ("--experiment", bool(experiments), "--mlflow", bool(tracking_uris)),
        ("--task-key", task_key is not None, "--mlflow", bool(tracking_uris)),
        ("--study", bool(studies), "--optuna", bool(storages)),
        ("--table-metric", table_metric is not None, "--table", bool(tables)),
    ]
    for option, given, source, named in needs:
        if given and not named:
            raise click.UsageError(f"{option} applies to the {source} sources, and no {source} is given.")


def _studies_here() -> str:
    """Where the studies that ``autotweak optimize`` ran with today's settings are, if anywhere."""
    import os

    from autotweak._locations import sqlite_path, storage_url_of

    if os.environ.get("AUTOTWEAK_STORAGE"):
        return ' (the studies autotweak runs here: --optuna "$AUTOTWEAK_STORAGE")'
    url = storage_url_of(None)
    local = sqlite_path(url)
    return (
        "" if local is None or not local.is_file() else f" (the studies autotweak ran here: --optuna {url})"
    )


def _said(label: str, histories: Histories) -> Histories:
    """``histories``, after a line saying what its source gave and left out."""
    got = f"{len(histories.tasks)} task(s), {histories.n_trials} trial(s)"
    _console.line(f"  {label}: {got}; {histories.skipped.summary()}")
    return histories


@click.command()
@click.argument("spec", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "-k", "--top", type=click.IntRange(min=1), default=5, show_default=True, help="Proposals to show."
)
@click.option("--model", help="Meta-model file (default: the spec's sampler.args.model, else one found).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def suggest(spec: str, top: int, model: str | None, as_json: bool) -> None:
    """The meta-learner's first proposals for SPEC, with why: no training is run.

    They are the proposals `autotweak optimize SPEC` starts with, after the base config
    (trial 0); from a study's second result on, its proposals also follow those results.
    Each shows its predicted rank (the share of configs it is expected to beat, a
    normalized score from 0 to 1, not a value of the metric), the spread of that
    prediction across past tasks, and the past tasks it comes from with their similarity
    and its score there, measured (the task ran it) or predicted (the task's surrogate).
    """
    from autotweak.cli._models import tasks_said
    from autotweak.meta import MetaSampler
    from autotweak.report._proposals import (
        MEASURED_NOTE,
        PREDICTED,
        PREDICTED_NOTE,
        SIMILARITY_NOTE,
        source_text,
    )
    from autotweak.spec import Component, load_experiment
    from autotweak.spec._components import build_sampler

    _console.configure_logging(0)  # a model file skipped on the way is worth a warning
    experiment = load_experiment(spec, check_objective=False)
    conditional = [p.name for p in experiment.space.params if p.when is not None]
    if conditional:
        raise AutotweakError(
            f"the meta-learner needs a space without conditional parameters; the space of {spec} has "
            f"{', '.join(conditional)} (optimize runs plain TPE there)."
        )
    args = dict(experiment.sampler.args) if experiment.sampler.name == "meta" else {}
    args["model"] = model or args.get("model", "auto")
    sampler = cast(MetaSampler, build_sampler(Component("meta", args), experiment.space, experiment.seed))
    if sampler.model is None:
        raise AutotweakError(_no_model(spec, experiment.space))
    fitted = sampler.model
    base = experiment.base_trial()
    proposals = sampler.plan(top, first=[] if base is None else [base])
    if as_json:
        _console.line(json.dumps([p.to_dict() for p in proposals], indent=2, default=str))
        return
    learned = f"{tasks_said(fitted.n_tasks)}, {len(fitted.units)} candidates"
    _console.line(f"meta-model {_model_name(args['model'], experiment.space)}: {learned}")
    if experiment.sampler.name != "meta":
        _console.line(
            f"note: the spec's sampler is {experiment.sampler.name!r}, so optimize does not use these "
            "proposals; with `sampler: meta` (the default) it starts with them."
        )
    elif base is not None:
        _console.line("after the base config, which optimize runs first (trial 0):")
    for rank, p in enumerate(proposals, start=1):
        config = ", ".join(f"{k}={_fmt(v)}" for k, v in p.params.items())
        _console.line(f"{rank}. {config}")
        spread = f"{p.uncertainty:.2f}" if p.uncertainty is not None else f"n/a ({fitted.n_tasks} past task)"
        _console.line(f"   {PREDICTED} {p.predicted:.2f} ± {spread}; from:")
        for source in p.sources:
            _console.line(f"     {source_text(source.to_dict())}")
    for note in (PREDICTED_NOTE, MEASURED_NOTE, SIMILARITY_NOTE):
        _console.line(note)
    if experiment.sampler.name == "meta" and len(proposals) > 1:
        _console.line(
            "Order: optimize runs proposal 1 first; it runs the others as listed while no result is in "
            "(parallel workers), and from the study's second result on its proposals follow those "
            "results, so later ones may differ from these."
        )
    if experiment.sampler.name == "meta" and len(proposals) > sampler.n_meta:
        _console.line(
            f"optimize serves the first {sampler.n_meta} (sampler.args.n_meta), "
            f"then {type(sampler.base).__name__}"
        )


def _model_name(model: Any, space: SearchSpace) -> str:
    """The name of the file ``suggest``'s model comes from: the one named, or the one found."""
    from autotweak.meta._library import found_at

    path = found_at(space) if str(model) == "auto" else Path(str(model))
    return "(found)" if path is None else path.name


def _no_model(spec: str, space: SearchSpace) -> str:
    """Why ``suggest`` has no model for the space of ``spec``, and what to do."""
    from autotweak.meta._library import why_none_fits, why_unserved

    unserved = why_unserved(space, f"the space of {spec}")
    if unserved is not None:
        return (
            f"{unserved}; move the ranges over some of its candidates, or fit a model for this space "
            "with `autotweak meta fit`."
        )
    nearest = why_none_fits(space)
    why = f": {nearest}" if nearest else f" ({', '.join(space.names)})"
    return (
        f"no meta-model fits the space of {spec}{why}; fit one with `autotweak meta fit --space {spec} ...` "
        "(docs/histories.md), then name it with --model or sampler.args.model."
    )


@dataclass(frozen=True)
class _Target:
    """What ``--space`` says: the space, and the metric, direction and base config of a spec."""

    space: SearchSpace
    metric: str | None = None
    direction: str | None = None
    base: dict[str, Any] = field(default_factory=dict)


def _target_of(ref: str) -> _Target:
    """The space of a library name, a space file or an experiment spec (with its metric and base)."""
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") and path.exists():
        from autotweak._yaml import read_yaml

        raw = read_yaml(path)
        if isinstance(raw, dict) and "tweaks" in raw:
            from autotweak._config import base_values
            from autotweak.spec import load_experiment

            experiment = load_experiment(path, check_objective=False)
            metric, space = experiment.metric, experiment.space
            return _Target(space, metric.name, metric.direction, base_values(experiment.base, space.names))
    from autotweak.space import load_space
    from autotweak.space._library import reported_at

    with reported_at("--space"):
        return _Target(load_space(ref))


def _rename(text: str) -> tuple[str, str]:
    recorded, sep, name = text.partition("=")
    if not sep or not recorded.strip() or not name.strip():
        raise click.BadParameter(f"must be RECORDED=NAME, got {text!r}.", param_hint="'--rename'")
    return recorded.strip(), name.strip()


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
