"""The ``autotweak`` command."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from autotweak._locations import (
    is_redacted,
    resolve_storage_url,
    resolve_tracking_uri,
)
from autotweak._signals import stop_on_sigterm
from autotweak.cli._console import Console
from autotweak.cli._models import pruner_shown, sampler_shown
from autotweak.cli._stores import open_storage, storage_option, store_failed, stores, tracking_option
from autotweak.exceptions import AutotweakError
from autotweak.spec import Budget, Execution, Experiment, load_experiment

if TYPE_CHECKING:
    import optuna

    from autotweak.engine import Progress, StudyResult

F = TypeVar("F", bound=Callable[..., Any])

_console = Console()


def _run_options(func: F) -> F:
    for option in reversed(
        [
            click.option("--workers", type=click.IntRange(min=1), help="Worker processes (or instances)."),
            click.option(
                "--executor",
                type=click.Choice(["processes", "aws-spot"]),
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="autotweak")
def cli() -> None:
    """Declared experiments, adaptive search with pruning, every trial in MLflow."""


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@_run_options
@storage_option
@tracking_option
@click.option("--name", help="Study name (overrides the spec's).")
def optimize(spec: str, name: str | None, **options: Any) -> None:
    """Run the experiment declared in SPEC (a YAML file)."""
    _console.configure_logging(int(options.get("verbose") or 0))  # loading the spec may warn already
    experiment = load_experiment(spec)
    experiment = _override(experiment, name=name, **options)
    _run(experiment, resume=False, **options)


@cli.command()
@click.argument("study")
@_run_options
@storage_option
@tracking_option
def resume(study: str, **options: Any) -> None:
    """Continue STUDY (a study name, or the spec file it was started from)."""
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

    study = load_study(experiment.name, open_storage(storage or experiment.storage))
    counted = BudgetView.read(study, None, need_compute=False).counted  # one COUNT query on a database
    if trials <= counted:
        raise AutotweakError(
            f"--trials {trials}: study '{experiment.name}' already has {counted} trial(s); --trials is "
            f"the study's total, not extra trials: `autotweak resume {experiment.name} --trials "
            f"{counted + 10}` runs 10 more."
        )


@cli.command()
@click.argument("study")
@storage_option
@tracking_option
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Worker processes.")
@click.option("--wall-time", help='Stop taking trials after this long, e.g. "2h".')
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def worker(
    study: str,
    storage: str | None,
    tracking_uri: str | None,
    workers: int,
    wall_time: str | None,
    verbose: int,
) -> None:
    """Join the running STUDY from this machine and run its trials until the budget is spent."""
    from autotweak._validation import Where
    from autotweak.engine._optimize import join
    from autotweak.spec._parts import parse_duration

    _console.configure_logging(verbose or 1)
    seconds = parse_duration(wall_time, Where("--wall-time")) if wall_time else None
    stores["storage"] = ("--storage", resolve_storage_url(storage))  # what a store error names
    if tracking_uri:
        stores["tracking"] = ("--tracking-uri", resolve_tracking_uri(tracking_uri))
    results = join(
        study,
        storage=storage,
        tracking_uri=tracking_uri,
        workers=workers,
        wall_time=seconds,
        on_ready=lambda: _console.line(f"joining study '{study}' with {workers} worker(s)"),
    )
    reasons = ", ".join(sorted({r.stop_reason for r in results}))
    _console.line(f"worker done: {sum(r.trials for r in results)} trial(s) run; stopped ({reasons})")
    if any(r.interrupted for r in results):
        raise SystemExit(130)


@cli.command()
@click.argument("study", required=False)
@storage_option
def status(study: str | None, storage: str | None) -> None:
    """List the studies, or show how STUDY stands."""
    import optuna

    from autotweak.engine._study import load_study, summarize

    opened = open_storage(storage)
    if study is None:
        url = stores["storage"][1]
        names = [s.study_name for s in opened.get_all_studies()]
        if not names:
            _console.line(f"no studies in {url}")
        for name in names:  # as the report counts them: the search's trials, the queued ones said apart
            found = summarize(optuna.load_study(study_name=name, storage=opened))
            best = "-" if found.best_value is None else f"{found.best_value:.6g}"
            queued = found.counts.get("waiting", 0)
            ran = sum(found.counts.values()) - queued
            more = f" ({queued} queued)" if queued else ""
            _console.line(f"{name}: {ran} trial{'' if ran == 1 else 's'}{more}, best {best}")
        return
    summary = summarize(load_study(study, opened))
    counts = ", ".join(f"{n} {state}" for state, n in summary.counts.items() if n)
    best = "-" if summary.best_value is None else f"{summary.best_value:.6g} (trial {summary.best_number})"
    _console.line(
        f"{study}: {counts or 'no trials'}; best {best}; compute {summary.compute:.2f} full trainings"
    )


@cli.command()
@click.argument("study")
@storage_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def best(study: str, storage: str | None, as_json: bool) -> None:
    """Print the best trial of STUDY: its value and tweaks (with --json, its full config too)."""
    from autotweak.engine._study import best_config, load_study, summarize

    loaded = load_study(study, open_storage(storage))
    summary = summarize(loaded)
    if summary.best_number is None:
        raise AutotweakError(f"study '{study}' has no completed trial yet.")
    if as_json:
        payload = {
            "trial": summary.best_number,
            "value": summary.best_value,
            "config": best_config(loaded, summary),  # as StudyResult.best_config: base + tweaks
            "params": summary.best_params,
        }
        _console.line(json.dumps(payload, indent=2, default=str))
        return
    _console.line(f"trial {summary.best_number}: {summary.best_value:.6g}")
    for key, value in summary.best_params.items():
        _console.line(f"  {key}: {value}")


@cli.command()
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
    from autotweak.report import compare_markdown, write_comparison

    url_storage = open_storage(storage)
    url = stores["storage"][1]
    if tracking_uri:
        stores["tracking"] = ("--tracking-uri", tracking_uri)
    loaded = [load_study(name, url_storage) for name in studies]
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
    _console.line(compare_markdown(loaded))
    if html_dir is not None:
        started = time.time()
        _console.line(_wrote(write_comparison(loaded, Path(html_dir)), started))


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
    from autotweak.report import build_report, log_report, write_html_report

    uri = _study_tracking_uri(study, tracking_uri)
    markdown = build_report(study, tracking_uri=uri).to_markdown()
    _console.line(markdown)
    if html_dir is None:
        return
    started = time.time()
    page = write_html_report(study, Path(html_dir), tracking_uri=uri)
    _console.line(_wrote(page, started))
    run_id = log_report(study, Path(html_dir), uri, markdown)
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


@cli.command()
@tracking_option
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True)
def ui(tracking_uri: str | None, port: int, host: str) -> None:
    """Serve the MLflow UI on the tracking store (loopback by default)."""
    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        _console.line(f"the tracking store is a server already: open {uri}")
        return
    mlflow = shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow"))
    _console.line(f"MLflow UI on http://{host}:{port} for {uri} (Ctrl-C to stop)")
    _console.line(f"  experiments: http://{host}:{port}/#/experiments?workflowType=machine_learning")
    command = [
        mlflow,
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # One worker and no job runner: the UI is for one person, and each extra process takes seconds to
    # start on a small machine (as scripts/team_stores.sh runs the team's server).
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    # Its own session, so that Ctrl-C reaches only autotweak, which then stops it quietly.
    server = subprocess.Popen(command, env=env, start_new_session=True)
    # Ctrl-C, a `kill` or a closed terminal stop it; SIGINT too, as a process started in the
    # background by a shell inherits it ignored.
    for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, signal.default_int_handler)
    try:
        code = server.wait()
    except KeyboardInterrupt:
        _stop(server)
        _console.line("MLflow UI stopped")
        raise SystemExit(0) from None
    raise SystemExit(code)


def _stop(server: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Stop the UI server and the workers it started (they share its process group)."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=grace)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


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


@cli.group()
def workers() -> None:
    """List or stop the EC2 spot instances that run a study's workers."""


@workers.command("list")
@click.argument("study", required=False)
@click.option("--region", envvar="AWS_REGION", help="AWS region (default: boto3's).")
@click.option("--all", "show_all", is_flag=True, help="Include terminated instances.")
def workers_list(study: str | None, region: str | None, show_all: bool) -> None:
    """List the worker instances of STUDY (or of every study)."""
    from autotweak.aws import workers_of

    found = workers_of(region, study, show_all=show_all)
    if not found:
        _console.line("no worker instances" + (f" for study '{study}'" if study else ""))
    for i in found:
        price = "-" if i.price is None else f"${i.price:.4g}/h"
        launched = i.launch_time.strftime("%Y-%m-%d %H:%M:%S")
        _console.line(f"{i.instance_id}  {i.instance_type}  {i.state}  {launched}  {price}  {i.study}")


@workers.command("stop")
@click.argument("study")
@click.option("--region", envvar="AWS_REGION", help="AWS region (default: boto3's).")
def workers_stop(study: str, region: str | None) -> None:
    """Terminate every worker instance of STUDY and end its launcher; running trials are retried on resume."""
    from autotweak.aws import stop_workers

    stopped = stop_workers(region, study)
    _console.line(f"terminated {len(stopped)} instance(s) of study '{study}'")


def _override(experiment: Experiment, name: str | None = None, **options: Any) -> Experiment:
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
        from autotweak.spec._experiment import parse_name

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

    study = load_study(name, open_storage(storage))
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
    _console.configure_logging(int(options.get("verbose") or 0))
    verb = "resuming" if resume else "starting"
    opened = (
        f"{verb} study '{experiment.name}': sampler {sampler_shown(experiment)}, pruner "
        f"{pruner_shown(experiment)}, {experiment.execution.workers} worker(s)"
    )
    stores["storage"] = _store_origin(experiment, "storage", options.get("storage"))
    stores["tracking"] = _store_origin(experiment, "tracking_uri", options.get("tracking_uri"))
    executor = None
    if options.get("executor", "processes") != "processes":
        from autotweak.engine._executors import EXECUTORS

        executor = EXECUTORS[options["executor"]](experiment.execution.workers)
    try:
        with _console.study_view(experiment) as view:
            on_progress = _announced(opened, view)  # said once the study is open, not before a setup error
            result = run_study(experiment, resume=resume, on_progress=on_progress, executor=executor)
    except StudyInterrupted as stopped:
        result = stopped.result  # closed cleanly: summed up below, then exit 130
    except KeyboardInterrupt:  # before the workers ran: nothing of a trial to close
        _console.error(
            f"interrupted before any trial started; if study '{experiment.name}' was created, "
            f"`autotweak resume {experiment.name}` continues it"
        )
        raise SystemExit(130) from None
    summary = result.summary
    counts = ", ".join(f"{n} {state}" for state, n in summary.counts.items() if n)
    _console.line(
        f"study '{result.study_name}' stopped ({', '.join(sorted(set(result.stop_reasons)))}): {counts}"
    )
    _say_budget_spent(experiment, result)
    if summary.best_value is not None:
        _console.line(f"best {experiment.metric.name} {summary.best_value:.6g} (trial {summary.best_number})")
        if summary.base_value is not None:
            _console.line(f"base config {summary.base_value:.6g}")
    if result.tracking_uri:
        _console.line(
            f"every trial is in MLflow: run `autotweak ui` and open experiment '{result.study_name}' "
            f"(parent run {result.study_run_id}, one child run per trial)"
        )
        link = _experiment_link(result.tracking_uri, result.study_name)
        if link:
            _console.line(f"  {link}")
    if result.registered_model:
        name, version = result.registered_model.rsplit("/", 1)
        _console.line(f"registered the best trial's model as '{name}' version {version}")
    if summary.interrupted:
        _console.line(f"`autotweak resume {result.study_name}` continues the study")
        raise SystemExit(130)
    crashed = [r for r in result.stop_reasons if r.startswith("crashed")]
    if crashed and len(crashed) == len(result.stop_reasons):
        _console.error(
            "every worker process crashed (see the log above); the study is intact: "
            f"`autotweak resume {result.study_name}` continues it"
        )
        raise SystemExit(1)
    if crashed:
        _console.line(f"warning: {len(crashed)} worker process(es) crashed; the others finished the study")
    states = summary.counts
    if states.get("failed") and not states.get("complete") and not states.get("pruned"):
        _console.error(
            f"every trial of study '{result.study_name}' failed ({states['failed']} failed, none completed); "
            "the reason is on each trial's line above; where an exception was raised, its traceback "
            "is kept in the trial's MLflow run (artifact traceback.txt; `autotweak ui` shows it)"
        )
        raise SystemExit(1)


def _say_budget_spent(experiment: Experiment, result: StudyResult) -> None:
    """Say why a run started no trial when the study already had its budget of trials."""
    if result.trials_run:
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
        return "--storage", resolve_storage_url(value)
    return "--tracking-uri", resolve_tracking_uri(value)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``autotweak`` console script."""
    stop_on_sigterm()  # `kill`, `docker stop`, a scheduler's end of job: the study closes as on Ctrl-C
    try:
        cli.main(args=argv, prog_name="autotweak", standalone_mode=False)
    except click.exceptions.Abort:
        _console.error("interrupted")
        raise SystemExit(130) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except AutotweakError as exc:
        _console.error(str(exc))
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        _console.error("interrupted")
        raise SystemExit(130) from None
    except Exception as exc:
        message = store_failed(exc)
        if message is None:
            raise
        _console.error(message)
        raise SystemExit(2) from None
