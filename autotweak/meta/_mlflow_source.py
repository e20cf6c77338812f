"""Histories from MLflow: any runs with params and the metric, autotweak's or logged by hand.

A run is a past trial when it has the metric and params that map onto the space. Its
learning curve is the metric's history by step; its value the last point of that history
(for autotweak's trial runs, the ``final_<metric>`` they record, which is all a trial whose
objective never reported has: it is read without a curve). The task is the run's
experiment, or the tag or param named by ``task_key``.

autotweak's study (parent) runs are not trials and are passed over. A run that failed,
still runs, or was preempted or interrupted by Ctrl-C (autotweak runs it again) is skipped,
as is one without the metric or with a non-finite value; all are counted with their reason. A
killed run (an autotweak trial that was pruned, or a person's run stopped early) is kept
with ``complete=False``.

Example:
    >>> from autotweak import load_space
    >>> space = load_space("hgb")
    >>> histories = read_mlflow("sqlite:///mlflow.db", metric="val_acc", space=space)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast, get_args

from mlflow import MlflowClient
from mlflow.entities import Experiment, Run, RunStatus, ViewType

from autotweak._locations import redact, with_postgres_driver
from autotweak.exceptions import AutotweakError, TrackingError
from autotweak.meta._histories import (
    Direction,
    Histories,
    HistoryError,
    PastTrial,
    SkipReport,
    TaskHistory,
    absent_file,
    as_names,
    as_space,
)
from autotweak.meta._mapping import ParamMapper
from autotweak.meta._mlflow_curves import read_curves
from autotweak.meta._mlflow_runs import descriptor, no_metric, no_task_key, unpacked, untweaked, value_of
from autotweak.meta._mlflow_waits import FIX as _FIX
from autotweak.meta._mlflow_waits import TrackingServerError, Waits
from autotweak.space import SearchSpace
from autotweak.tracking._server import check_tracking_server

__all__ = ["TrackingServerError", "read_mlflow"]

_log = logging.getLogger(__name__)

_PAGE = 1000
_STATUS_REASON = {
    "FAILED": "the run failed",
    "RUNNING": "the run is still running",
    "SCHEDULED": "the run has not started",
}


@dataclass
class _Reading:
    """What one call reads with: the client, the rules and the report."""

    client: MlflowClient
    tracking_uri: str
    metric: str
    task_key: str | None
    curves: bool
    mapper: ParamMapper
    skipped: SkipReport
    waits: Waits  # says a request the server keeps waiting (MLflow's retries take minutes)
    progress: Callable[[int, int], None] | None = None
    total: int = 0
    done: int = 0
    studies: dict[str, dict[str, str]] = field(default_factory=dict)  # an experiment's study runs' params

    def read_one(self) -> None:
        """Count one more run read, and say so to ``progress``."""
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


def read_mlflow(
    tracking_uri: str,
    experiments: str | Sequence[str] | None = None,
    *,
    metric: str,
    direction: Direction = "maximize",
    space: SearchSpace | str | os.PathLike[str],
    task_key: str | None = None,
    renames: Mapping[str, str] | None = None,
    base: Mapping[str, Any] | None = None,
    curves: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> Histories:
    """Read the runs of MLflow experiments (all active ones if ``experiments`` is not given).

    Args:
        tracking_uri: Any MLflow tracking URI.
        experiments: Names of the experiments to read (or one name).
        metric: The metric whose last value scores a run and whose history is its curve.
        direction: Whether the metric was maximized or minimized.
        space: The space to map run params (strings) onto, or a library space name or
            space file.
        task_key: A run tag or param naming the task (default: the experiment's name).
        renames: Recorded param name -> the space's name.
        base: Values for params a run lacks.
        curves: Whether to read each run's metric history (one request per run).
        progress: Called with the runs read so far and the runs of the experiments in
            all: once with 0 when they are listed, then after each run (the CLI's progress).

    Raises:
        HistoryError: If a named experiment is not in the store, MLflow cannot open the
            tracking URI, or an argument is of the wrong kind; a ``TrackingServerError`` if
            the tracking server does not serve.

    Example:
        >>> from autotweak import load_space
        >>> read_mlflow(  # doctest: +SKIP
        ...     "http://mlflow:5000", ["wine-hgb"], metric="val_acc", space=load_space("hgb")
        ... ).n_trials
        64
    """
    if direction not in get_args(Direction):
        raise HistoryError(f"'direction' must be 'maximize' or 'minimize', got {direction!r}.")
    if not isinstance(tracking_uri, str):
        raise HistoryError(f"'tracking_uri' must be an MLflow tracking URI (text), got {tracking_uri!r:.80}.")
    if not isinstance(metric, str) or not metric.strip():
        raise HistoryError(f"'metric' must be the name of a run metric (text), got {metric!r:.80}.")
    names = as_names(experiments, "experiments")
    mapper = ParamMapper(as_space(space, HistoryError), renames, base)
    where = redact(tracking_uri)
    client = _opened(tracking_uri, where)
    waits = Waits(client.tracking_uri, where)
    with waits.on("listing the experiments"):
        found = _experiments(client, names, where)
    reading = _Reading(
        client, client.tracking_uri, metric, task_key, curves, mapper, SkipReport(), waits, progress
    )
    listed = []
    for experiment in found:
        with waits.on(f"listing the runs of experiment {experiment.name!r}"):
            listed.append((experiment, _runs(client, experiment)))
    reading.total = sum(len(runs) for _, runs in listed)
    if progress is not None:
        progress(0, reading.total)
    tasks = _tasks(reading, listed, direction, where)
    reading.skipped.note_all(reading.mapper.notes)
    histories = Histories(tasks, reading.skipped)
    _log.info(
        "histories from MLflow %s: %d task(s), %d trial(s); %s",
        where,
        len(tasks),
        histories.n_trials,
        reading.skipped.summary(),
    )
    return histories


def _opened(tracking_uri: str, where: str) -> MlflowClient:
    """A client of the store ``tracking_uri`` names, once it is known to exist and to answer.

    Raises:
        HistoryError: If it names no MLflow store, or a PostgreSQL one without a driver;
            a ``TrackingServerError`` if the tracking server does not serve.
    """
    absent_file(tracking_uri, "an MLflow store", table="experiments")
    try:
        tracking_uri = with_postgres_driver(tracking_uri)  # postgresql:// with psycopg2, as installed
    except AutotweakError as exc:
        raise HistoryError(str(exc)) from None
    try:
        check_tracking_server(tracking_uri, fix=_FIX)  # one request, not minutes of retries
    except TrackingError as exc:
        raise TrackingServerError(str(exc)) from None
    return _client(tracking_uri, where)


def _tasks(
    reading: _Reading, listed: Sequence[tuple[Experiment, list[Run]]], direction: Direction, where: str
) -> tuple[TaskHistory, ...]:
    """The listed runs as tasks: one per experiment, or per value of the task key."""
    by_task: dict[str, list[PastTrial]] = {}
    descriptors: dict[str, dict[str, float | str]] = {}
    directions: dict[str, Direction] = {}
    for experiment, runs in listed:
        recorded = _recorded_direction(reading, experiment, direction)
        for task, trial in _trials(reading, experiment, runs):
            by_task.setdefault(task, []).append(trial)
            directions.setdefault(task, recorded)
            if reading.task_key is None:
                descriptors[task] = descriptor(experiment.tags)
    return tuple(
        TaskHistory(
            name, directions[name], tuple(trials), descriptors.get(name, {}), f"mlflow:{where}#{name}"
        )
        for name, trials in by_task.items()
    )


def _client(tracking_uri: str, where: str) -> MlflowClient:
    """A client of the store; MLflow refuses a URI it cannot open with its own exceptions."""
    try:
        return MlflowClient(tracking_uri=tracking_uri)
    except Exception as exc:  # MlflowException and its store-specific subclasses, OSError, ...
        problem = str(exc).strip().split(". ")[0]
        raise HistoryError(
            f"'tracking_uri' must be a tracking URI MLflow can open (sqlite:///mlflow.db, http://host:5000, "
            f"file:///path/mlruns), got {where!r} ({type(exc).__name__}: {problem:.200})."
        ) from None


def _experiments(client: MlflowClient, names: list[str] | None, where: str) -> list[Experiment]:
    if names is None:
        return list(
            _pages(lambda token: client.search_experiments(ViewType.ACTIVE_ONLY, _PAGE, page_token=token))
        )
    found = [client.get_experiment_by_name(name) for name in names]
    deleted = [e.name for e in found if e is not None and e.lifecycle_stage == "deleted"]
    if deleted:
        raise HistoryError(
            f"{where}: 'experiments' must name active experiments, got deleted ones: {deleted} "
            "(restore them in the MLflow UI, or `mlflow experiments restore`)."
        )
    unknown = [name for name, experiment in zip(names, found, strict=True) if experiment is None]
    if unknown:
        there = sorted(e.name for e in _pages(lambda token: client.search_experiments(page_token=token)))
        listing = ", ".join(there) or "none"
        raise HistoryError(
            f"{where}: 'experiments' must name experiments of the store (there: {listing}), got {unknown}."
        )
    return [experiment for experiment in found if experiment is not None]


def _recorded_direction(reading: _Reading, experiment: Experiment, given: Direction) -> Direction:
    """The direction an autotweak study in ``experiment`` recorded for the metric, else ``given``.

    A study's parent run records its metric and direction as params: a store of loss and
    accuracy studies is then read right whatever ``direction`` says. Where it differs from
    ``given``, the report notes it.
    """
    with reading.waits.on(f"looking for an autotweak study's run in experiment {experiment.name!r}"):
        studies = reading.client.search_runs(
            [experiment.experiment_id],
            "tags.`autotweak.kind` = 'study'",
            ViewType.ACTIVE_ONLY,
            max_results=10,
        )
    for run in studies:
        params = run.data.params
        recorded = params.get("direction")
        if params.get("metric") == reading.metric and recorded in get_args(Direction):
            if recorded != given:
                reading.skipped.note(
                    f"experiment {experiment.name!r} read as {recorded} (its autotweak study's direction), "
                    f"not {given}"
                )
            return cast(Direction, recorded)
    return given


def _pages(search: Any) -> Iterator[Any]:
    """Every item of a paged MLflow search."""
    token = None
    while True:
        page = search(token)
        yield from page
        token = page.token
        if not token:
            return


def _runs(client: MlflowClient, experiment: Experiment) -> list[Run]:
    """The active runs of ``experiment``, every page."""

    def search(token: str | None) -> Any:
        return client.search_runs(
            [experiment.experiment_id],
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=_PAGE,
            page_token=token,
        )

    return list(_pages(search))


@dataclass
class _Draft:
    """A run kept so far: all but its curve (its params mapped, their changes not yet counted)."""

    task: str
    run_id: str
    config: dict[str, Any]
    changes: Counter[str]
    value: float
    complete: bool
    wants_curve: bool


_Skipped = tuple[str, str]  # (reason, source)


def _trials(reading: _Reading, experiment: Experiment, runs: list[Run]) -> Iterator[tuple[str, PastTrial]]:
    """The runs' trials in the runs' order; curves are read only for the runs kept so far."""
    parents = {run.data.tags.get("mlflow.parentRunId") for run in runs}
    kinds = {run.info.run_id: run.data.tags.get("autotweak.kind") for run in runs}
    reading.studies = {run.info.run_id: run.data.params for run in runs if kinds[run.info.run_id] == "study"}
    drafts = [_draft(reading, experiment, run, parents) for run in runs]
    wanted = [d.run_id for d in drafts if isinstance(d, _Draft) and d.wants_curve]
    for _ in range(len(runs) - len(wanted)):
        reading.read_one()
    waits = reading.waits
    curves = read_curves(
        reading.client,
        reading.tracking_uri,
        wanted,
        reading.metric,
        reading.read_one,
        waits.waiting,
        waits.gone,
    )
    for draft in drafts:
        if isinstance(draft, _Draft):
            curve = curves.get(draft.run_id, ((), ()))
            if isinstance(curve, Exception):
                draft = (f"the run cannot be read: {type(curve).__name__}", f"mlflow:{draft.run_id}")
            else:
                reading.mapper.notes.update(draft.changes)
                steps, points = curve
                yield (
                    draft.task,
                    PastTrial(
                        draft.config, draft.value, steps, points, f"mlflow:{draft.run_id}", draft.complete
                    ),
                )
        if isinstance(draft, tuple):
            reading.skipped.add(*draft)


def _draft(
    reading: _Reading, experiment: Experiment, run: Run, parents: set[str | None]
) -> _Draft | _Skipped | None:
    """``run`` but for its curve, why it is skipped, or ``None`` (a study's run, not counted)."""
    if run.data.tags.get("autotweak.kind") == "study":
        return None
    source = f"mlflow:{run.info.run_id}"
    if run.info.run_id in parents:  # a sweep's parent: its children are the trials
        return "the run is a parent of other runs (its child runs are read)", source
    try:
        return _drafted(reading, experiment, run, source)
    except Exception as exc:  # a record must never stop the reading
        return f"the run cannot be read: {type(exc).__name__}", source


def _drafted(reading: _Reading, experiment: Experiment, run: Run, source: str) -> _Draft | _Skipped:
    tags, params = run.data.tags, run.data.params
    state = tags.get("autotweak.state")
    if run.info.status in _STATUS_REASON:
        return _STATUS_REASON[run.info.status], source
    if state == "preempted":
        return "the trial was preempted (run again elsewhere)", source
    if state == "interrupted":
        return "the trial was interrupted by Ctrl-C (run again on resume)", source
    task: str | None = experiment.name
    if reading.task_key is not None:
        task = tags.get(reading.task_key, params.get(reading.task_key))
        if task is None:
            return no_task_key(reading.task_key, [*tags, *params]), source
    value = value_of(run, reading.metric)
    if value is None:
        return no_metric(reading.metric, run), source
    if not math.isfinite(value):
        return f"metric {reading.metric!r} is not a finite number", source
    record = unpacked(params)
    study = reading.studies.get(tags.get("mlflow.parentRunId", ""))
    quiet = frozenset() if study is None else untweaked(record, study)
    config, reason, changes = reading.mapper.mapped(record, quiet)
    if config is None:
        return reason or "the run cannot be read", source
    complete = run.info.status == RunStatus.to_string(RunStatus.FINISHED)
    wants_curve = reading.curves and reading.metric in run.data.metrics
    return _Draft(str(task), run.info.run_id, config, changes, value, complete, wants_curve)
