"""``autotweak optimize``, ``resume`` and ``worker``: run a study's trials and say how it ended."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from autotweak._locations import (
    is_redacted,
    storage_url_of,
    tracking_uri_of,
)
from autotweak.cli._main import _console
from autotweak.cli._models import pruner_shown, sampler_shown
from autotweak.cli._stores import open_storage, option_label, storage_option, stores, tracking_option
from autotweak.cli._study_end import (
    completed_none,
    none_completed,
    on_server,
    resume_command,
    said_at_the_end,
    say_budget_spent,
    say_cost,
)
from autotweak.exceptions import AutotweakError

if TYPE_CHECKING:
    from autotweak.engine import BaseExecutor, Progress
    from autotweak.spec import Experiment

__all__ = ["optimize", "resume", "worker"]

F = TypeVar("F", bound=Callable[..., Any])


def _spot_executor(workers: int) -> BaseExecutor:
    from autotweak.aws import SpotExecutor  # boto3 only when asked for

    return SpotExecutor(workers)


# --executor: each name builds the executor for a number of workers; None is the engine's default
# (inline for one worker, local processes for more).
_EXECUTORS: dict[str, Callable[[int], BaseExecutor | None]] = {
    "processes": lambda workers: None,
    "aws-spot": _spot_executor,
}


# Loggers of an executor whose INFO lines are shown without -v: the spot launcher's prices,
# launches and terminations (instances take minutes to boot, and cost money while they run).
_SAID = {"aws-spot": ("autotweak.aws._executor", "autotweak.aws._ec2", "autotweak.aws._launch_checks")}


# Optuna's WAITING is a trial queued to run (the baseline, a warm start, a retry): `status` says queued too.
_SAID_STATE = {"waiting": "queued"}


def _run_options(func: F) -> F:
    for option in reversed(
        [
            click.option("--workers", type=click.IntRange(min=1), help="Worker processes (or instances)."),
            click.option(
                "--executor",
                type=click.Choice(list(_EXECUTORS)),
                default="processes",
                show_default=True,
                help="Where workers run: local processes, or EC2 spot instances (spec: execution.aws).",
            ),
            click.option("--trials", type=click.IntRange(min=1), help="Total trials of the study."),
            click.option(
                "--wall-time", help='Start no trial after this long (this session), e.g. "90s", "10m", "2h".'
            ),
            click.option("-q", "--quiet", is_flag=True, help="No progress output."),
            click.option("-v", "--verbose", count=True, help="More log output (-vv for debug)."),
        ]
    ):
        func = option(func)
    return func


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@_run_options
@storage_option
@tracking_option
@click.option("--name", help="Study name (overrides the spec's).")
def optimize(spec: str, name: str | None, **options: Any) -> None:
    """Run the experiment declared in SPEC (a YAML file)."""
    from autotweak.spec import load_experiment

    _console.configure_logging(int(options.get("verbose") or 0))  # loading the spec may warn already
    experiment = load_experiment(spec)
    experiment = _override(experiment, name=name, **options)
    _run(experiment, resume=False, **options)


@click.command()
@click.argument("study")
@_run_options
@storage_option
@tracking_option
def resume(study: str, **options: Any) -> None:
    """Continue STUDY (a study name, or the spec file it was started from)."""
    from autotweak.spec import load_experiment

    _console.configure_logging(int(options.get("verbose") or 0))
    if Path(study).is_file():
        experiment = load_experiment(study)
    else:
        experiment = _experiment_from_storage(study, options.get("storage"), options.get("tracking_uri"))
    experiment = _override(experiment, **options)
    if options.get("trials"):
        _check_more_trials(experiment, options["trials"], options.get("storage"))
    _run(experiment, resume=True, **options)


def _check_more_trials(experiment: Experiment, trials: int, storage: str | None) -> None:
    """Refuse ``resume --trials N`` when the study already counts N trials: it would only lower the budget."""
    from autotweak.engine._budget import BudgetView
    from autotweak.engine._study import load_study

    study = load_study(experiment.name, open_storage(storage or experiment.storage, experiment.name))
    counted = BudgetView.read(study, None, need_compute=False).counted  # one COUNT query on a database
    if trials <= counted:
        raise AutotweakError(
            f"--trials {trials}: study '{experiment.name}' already has {counted} trial(s); --trials is "
            f"the study's total, not extra trials: `autotweak resume {experiment.name} --trials "
            f"{counted + 10}` runs 10 more."
        )


@click.command()
@click.argument("study")
@storage_option
@tracking_option
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Worker processes.")
@click.option("--wall-time", help='Stop taking trials after this long, e.g. "2h".')
@click.option(
    "--session", hidden=True, help="The id of the session that launched this worker (spot workers)."
)
@click.option(
    "--supervise",
    is_flag=True,
    help="Run even one worker in a child process: if the kernel kills it (out of memory), its trial "
    "fails at once, naming the kill, and runs again once at most.",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def worker(
    study: str,
    storage: str | None,
    tracking_uri: str | None,
    workers: int,
    wall_time: str | None,
    session: str | None,
    supervise: bool,
    verbose: int,
) -> None:
    """Join the running STUDY from this machine and run its trials until the budget is spent."""
    from autotweak._validation import Where
    from autotweak.engine._join import join
    from autotweak.spec._parts import parse_duration

    _console.configure_logging(verbose or 1)
    seconds = parse_duration(wall_time, Where("--wall-time")) if wall_time else None
    stores["storage"] = (option_label("--storage"), storage_url_of(storage))  # what a store error names
    if tracking_uri:
        stores["tracking"] = (option_label("--tracking-uri"), tracking_uri_of(tracking_uri))
    results = join(
        study,
        storage=storage,
        tracking_uri=tracking_uri,
        workers=workers,
        wall_time=seconds,
        session=session,
        on_ready=lambda: _console.line(f"joining study '{study}' with {workers} worker(s)"),
        supervise=supervise,
    )
    reasons = ", ".join(sorted({r.stop_reason for r in results if not r.replaced}))
    replaced = sum(r.replaced for r in results)
    _console.line(
        f"worker done: {sum(r.trials for r in results)} trial(s) run; stopped ({reasons})"
        + (f"; {replaced} worker process(es) died in a trial and were replaced" if replaced else "")
    )
    if any(r.interrupted for r in results):
        raise SystemExit(130)


def _experiment_link(tracking_uri: str, study: str, ui: str = "http://127.0.0.1:5000") -> str | None:
    """The study's runs in the MLflow UI, in its model-training view (MLflow 3 opens on GenAI)."""
    from mlflow import MlflowClient

    try:
        experiment = MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name(study)
    except Exception:  # a link is a convenience: never fail a finished study over it
        return None
    if experiment is None:
        return None
    base = tracking_uri if tracking_uri.startswith(("http://", "https://")) else ui
    return f"{base.rstrip('/')}/#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning"


def _override(experiment: Experiment, name: str | None = None, **options: Any) -> Experiment:
    from autotweak.spec import Budget, Execution

    budget = experiment.budget
    if options.get("trials") or options.get("wall_time"):
        from autotweak._validation import Where
        from autotweak.spec._parts import parse_duration

        wall = options.get("wall_time")
        budget = Budget(
            trials=options.get("trials") or budget.trials,
            wall_time=parse_duration(wall, Where("--wall-time")) if wall else budget.wall_time,
            compute=budget.compute,
        )
    if name is not None:
        from autotweak._validation import Where
        from autotweak.spec._fields import parse_name

        name = parse_name({"name": name}, Where("--name"))["name"]
    execution = experiment.execution
    if options.get("workers"):
        execution = Execution(**{**vars(execution), "workers": options["workers"]})
    return experiment.with_overrides(
        name=name,
        budget=budget,
        execution=execution,
        storage=options.get("storage"),
        tracking_uri=options.get("tracking_uri"),
    )


def _experiment_from_storage(name: str, storage: str | None, tracking_uri: str | None) -> Experiment:
    """The experiment a study keeps, with the store URLs whose password its records hide given again."""
    from autotweak.engine._study import ATTR, load_study
    from autotweak.spec import Experiment

    study = load_study(name, open_storage(storage, name))
    spec = study.user_attrs.get(ATTR.SPEC)
    if not spec:
        raise AutotweakError(f"study '{name}' was not created by autotweak; it holds no spec to resume from.")
    spec = dict(spec)
    if spec.get("storage") and is_redacted(spec["storage"]):
        spec["storage"] = None  # the study was found in the store given now (option, variable or default)
    recorded = spec.get("tracking_uri")
    if recorded and is_redacted(recorded):
        given = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not given:
            raise AutotweakError(
                f"study '{name}' keeps its MLflow tracking URI without the password ({recorded}); give it "
                "again with --tracking-uri or $MLFLOW_TRACKING_URI."
            )
        spec["tracking_uri"] = given
    return Experiment.from_dict(spec, source=f"<study {name}>")


def _run(experiment: Experiment, *, resume: bool, **options: Any) -> None:
    from autotweak.engine import StudyInterrupted
    from autotweak.engine import optimize as run_study

    _console.quiet = bool(options.get("quiet"))
    executor_name = options.get("executor") or "processes"
    _console.configure_logging(int(options.get("verbose") or 0), said=_SAID.get(executor_name, ()))
    verb = "resuming" if resume else "starting"
    opened = (
        f"{verb} study '{experiment.name}': sampler {sampler_shown(experiment)}, pruner "
        f"{pruner_shown(experiment)}, {experiment.execution.workers} worker(s)"
    )
    stores["storage"] = _store_origin(experiment, "storage", options.get("storage"))
    stores["tracking"] = _store_origin(experiment, "tracking_uri", options.get("tracking_uri"))
    executor = _EXECUTORS[executor_name](experiment.execution.workers)
    try:
        with _console.study_view(experiment) as view, said_at_the_end():
            on_progress = _announced(opened, view)  # said once the study is open, not before a setup error
            result = run_study(experiment, resume=resume, on_progress=on_progress, executor=executor)
    except StudyInterrupted as stopped:
        result = stopped.result  # closed cleanly: summed up below, then exit 130
    except KeyboardInterrupt:  # before the workers ran: nothing of a trial to close
        _console.error(
            f"interrupted before any trial started; if study '{experiment.name}' was created, "
            f"`{resume_command(experiment.name, options)}` continues it"
        )
        raise SystemExit(130) from None
    summary = result.summary
    counts = ", ".join(f"{n} {_SAID_STATE.get(state, state)}" for state, n in summary.counts.items() if n)
    reasons = ", ".join(sorted(set(result.stop_reasons)))
    _console.line(f"study '{result.study_name}' stopped ({reasons}): {counts or 'no trials'}")
    say_budget_spent(experiment, result)
    say_cost(executor, result.study_name)
    if summary.best_value is not None:
        _console.line(f"best {experiment.metric.name} {summary.best_value:.6g} (trial {summary.best_number})")
        if summary.base_value is not None:
            _console.line(f"base config {summary.base_value:.6g}")
    if result.tracking_uri and result.unrecorded is None:  # else said above, and a link would wait minutes
        server = on_server(result.tracking_uri)  # `autotweak ui` serves files only
        _console.line(
            f"every trial is in MLflow: {'open' if server else 'run `autotweak ui` and open'} experiment "
            f"'{result.study_name}' (parent run {result.study_run_id}, one child run per trial)"
        )
        link = _experiment_link(result.tracking_uri, result.study_name)
        if link:
            _console.line(f"  {link}")
    if result.registered_model:
        name, version = result.registered_model.rsplit("/", 1)
        _console.line(f"registered the best trial's model as '{name}' version {version}")
    if summary.interrupted:
        _console.line(f"`{resume_command(result.study_name, options)}` continues the study")
        raise SystemExit(130)
    crashed = [r for r in result.stop_reasons if r.startswith("crashed")]
    if crashed and len(crashed) == len(result.stop_reasons):
        _console.error(
            "every worker process crashed (see the log above); the study is intact: "
            f"`{resume_command(result.study_name, options)}` continues it"
        )
        raise SystemExit(1)
    if crashed:
        _console.line(f"warning: {len(crashed)} worker process(es) crashed; the others finished the study")
    if result.workers_replaced:
        _console.line(
            f"warning: {result.workers_replaced} worker process(es) died in a trial and were replaced; "
            "their trials are failed, each with why (the signal or exit code; whether the kernel was out "
            "of memory)"
        )
    if completed_none(result):
        _console.error(none_completed(result, options))
        raise SystemExit(1)


def _announced(line: str, view: Callable[[Progress], None]) -> Callable[[Progress], None]:
    """``view``, printing ``line`` before its first call."""
    said = False

    def callback(progress: Progress) -> None:
        nonlocal said
        if not said:
            said = True
            _console.line(line)
        view(progress)

    return callback


def _store_origin(experiment: Experiment, key: str, option: str | None) -> tuple[str, str]:
    """Where the URL of a store came from (the option, the spec or the default) and the URL."""
    value = getattr(experiment, key)
    if value and not option:
        return f"'{key}' in {experiment.source}" if experiment.source else key, value
    if key == "storage":
        return option_label("--storage"), storage_url_of(value)
    return option_label("--tracking-uri"), tracking_uri_of(value)
