"""``optimize``: create or resume a study, run its workers, record and summarize it."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna

from autotweak._locations import storage_url_of
from autotweak._signals import keep_lost_interrupts, sigterm_as_ctrl_c
from autotweak.engine._budget import BudgetView, close_connections, hold_connections
from autotweak.engine._crashed import CrashSettler, settle_crashed_workers
from autotweak.engine._executors import BaseExecutor, ProcessExecutor, WorkerCrashError
from autotweak.engine._lost_records import records_dropped
from autotweak.engine._monitor import Monitor, Progress
from autotweak.engine._none_completed import go_on, say_if_none_completed, say_if_none_run, workers_stopped
from autotweak.engine._opening import catch_up
from autotweak.engine._outage import OutageNotice, note_outage
from autotweak.engine._prepare import Prepared, _runner, as_experiment, check_study_exists, prepare
from autotweak.engine._share import register_winner
from autotweak.engine._storage import MEMORY
from autotweak.engine._study import config_of
from autotweak.engine._study_sessions import record_session
from autotweak.engine._summary import summarize
from autotweak.engine._trial import MODEL_ATTR
from autotweak.engine._unreachable import retrying
from autotweak.engine._worker import WorkerResult
from autotweak.exceptions import AutotweakError, StudyInterrupted
from autotweak.spec import Experiment
from autotweak.tracking import BaseTracker, NullTracker, StudySummary

__all__ = ["StudyInterrupted", "StudyResult", "optimize", "prepare"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyResult:
    """What ``optimize`` did, and where to find it.

    Attributes:
        best_config: The best trial's full config, as its objective received it: the base
            config updated with the trial's tweaks, less the conditional ones they leave
            inactive (``{}`` while no trial completed).
        trials_run: Trials this call ran (0 when the budget was already spent).
        trials_counted: The study's trials counted against ``budget.trials`` (retries and
            ``report --ablate`` trials are not).
        unrecorded: Why the study closed without its MLflow records (its tracking server did
            not answer then), or ``None``; resuming the study writes them.
        records_caught_up: Trial records this call wrote from Optuna's trials: those missing
            or left open (a tracking server that was down, a worker that crashed).
        stop_reasons: Why each worker stopped; a worker process that died and was replaced
            (:attr:`workers_replaced`) is not one of them: the study went on without a stop.
        workers_replaced: Worker processes that died in a trial (killed by the kernel's OOM
            killer, a crash in native code; ended by ``os._exit(n)`` or a native library's
            ``exit()``) and were replaced; their trials are failed.
        first_failure: When no trial completed and some failed: the first failed trial's
            number and the first line of why (the warning that ``optimize`` logs names it
            too); else ``None``.
    """

    summary: StudySummary
    study_name: str
    storage: str
    tracking_uri: str | None
    study_run_id: str | None
    stop_reasons: list[str]
    registered_model: str | None = None
    unrecorded: str | None = None
    best_config: dict[str, Any] = field(default_factory=dict)
    trials_run: int = 0
    trials_counted: int = 0
    records_caught_up: int = 0
    workers_replaced: int = 0
    first_failure: tuple[int, str] | None = None

    def __repr__(self) -> str:
        """The study's line (see :meth:`StudySummary.line`) and the trials this call ran (``ran 10``).

        The full config and where the records are stay in their fields (:attr:`best_config`,
        :attr:`study_run_id`).
        """
        return f"StudyResult({self.summary.line(self.stop_reasons)}; ran {self.trials_run})"

    @property
    def best_value(self) -> float | None:
        """The best value found."""
        return self.summary.best_value

    @property
    def best_params(self) -> dict[str, Any]:
        """Only the tweaked values of the best trial (its Optuna params)."""
        return dict(self.summary.best_params)


def optimize(
    experiment: Experiment | Mapping[str, Any] | str | os.PathLike[str],
    *,
    resume: bool = False,
    workers: int | None = None,
    executor: BaseExecutor | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    track: bool = True,
) -> StudyResult:
    """Run a study: adaptive search with pruning, every trial recorded in MLflow.

    With more than one worker, the workers are new processes that import the main script
    again: a script must call ``optimize`` under ``if __name__ == "__main__":`` (a call
    reached while a worker starts raises), and a callable objective must be a function
    defined at the top level of a module.

    Args:
        experiment: An :class:`~autotweak.spec.Experiment`, its mapping form (as
            :meth:`~autotweak.spec.Experiment.from_dict` takes) or the path of its YAML file.
        resume: Continue the existing study of the same name instead of creating one.
        workers: Override ``execution.workers``.
        executor: Where to run workers (inline for one worker, local processes for more).
        on_progress: Called about once a second with a :class:`Progress` snapshot.
        track: Record in MLflow (``False`` runs bare Optuna, e.g. for baselines).

    Returns:
        The study's summary and where it is stored.

    Raises:
        StudyInterrupted: On Ctrl-C, or SIGTERM where the script set no handler of its own,
            once the study is closed (a ``KeyboardInterrupt`` whose ``result`` is the study
            as it stood).
        WorkerCrashError: If every worker failed (its error and exit code are named); the
            study and its records are kept, closed as interrupted, ready to resume.

    Example:
        >>> if __name__ == "__main__":  # doctest: +SKIP
        ...     result = optimize("examples/sklearn_wine.yaml")
        ...     print(f"{result.best_value:.6g}")  # validation log loss; the base config's is 0.0062184
        0.00119983
    """
    experiment = as_experiment(experiment)
    if workers is not None:
        from autotweak.spec import Execution

        experiment = experiment.with_overrides(
            execution=Execution(**{**vars(experiment.execution), "workers": workers})
        )
    url = storage_url_of(experiment.storage)
    if url == MEMORY:
        raise AutotweakError(
            "optimize() needs a storage its workers can share; storage='memory' works with "
            "the ask/tell Study API only."
        )
    if resume:  # before the executor's checks make the stores' folder
        check_study_exists(experiment)
    runner, objective = _runner(experiment, executor, track=track)  # before the study exists
    with sigterm_as_ctrl_c():  # a scheduler's SIGTERM closes the study as Ctrl-C does
        with keep_lost_interrupts(put_back=True):  # one that lands in a finalizer as the stores open
            prepared = prepare(experiment, resume=resume, track=track, executor=runner.meta)
        return _run(prepared, objective, runner, on_progress)


def run_queued(experiment: Experiment) -> StudyResult:
    """Run trials of an existing study with ``experiment``'s components, its stored setup untouched.

    For ``report --ablate``: the trials it queued run with pruning off while the study (and
    any worker joining it meanwhile) keeps its own pruner and budget.
    """
    runner, objective = _runner(experiment, None)
    return _run(prepare(experiment, resume=True, keep_setup=True), objective, runner, None)


def _run(
    prepared: Prepared,
    objective: Callable[..., Any] | None,
    runner: BaseExecutor,
    on_progress: Callable[[Progress], None] | None,
) -> StudyResult:
    hold_connections(prepared.context.storage_url)  # the ask lock's pool, shared with other studies open
    try:
        return _run_study(prepared, objective, runner, on_progress)
    finally:
        prepared.tracker.close()  # its helper process and connections, also in a notebook that goes on
        close_connections(prepared.storage, prepared.context.storage_url)


def _run_study(
    prepared: Prepared,
    objective: Callable[..., Any] | None,
    runner: BaseExecutor,
    on_progress: Callable[[Progress], None] | None,
) -> StudyResult:
    experiment = prepared.experiment
    callback = on_progress or _log_progress
    settle = experiment.execution.grace_period if runner.detached else 0.0  # see _close
    if isinstance(runner, ProcessExecutor):  # its dead workers' trials settled on this study's stores
        settler = CrashSettler(
            experiment, lambda: prepared.study, prepared.context.tracking_uri, tracker=prepared.tracker
        )
        runner = runner.settled_by(settler)
    try:
        with Monitor(prepared.study, experiment, callback):
            results = runner.run(prepared.context, objective)
            settle_crashed_workers(
                prepared.study, prepared.tracker, experiment, results
            )  # before its last look
    except BaseException:
        _close(prepared, interrupted=True, settle=settle)
        raise
    interrupted = any(r.interrupted for r in results)
    if results and all(r.crashed for r in results) and not interrupted:
        _close(prepared, interrupted=True, settle=settle)  # the parent run ends KILLED, not FINISHED
        raise WorkerCrashError(experiment.name, [str(r.error) for r in results])
    dropped = None if runner.detached else sum(r.records_dropped for r in results)  # else said where they ran
    summary = _close(prepared, interrupted=interrupted, settle=settle, dropped=dropped)
    registered = None
    recorded = prepared.unrecorded is None  # else registering would wait minutes on the same server
    if experiment.register_model and prepared.context.tracking_uri and not interrupted and recorded:
        named = experiment.register_model is not True
        name = str(experiment.register_model) if named else experiment.name
        registered = register_winner(
            prepared.study, summary, name, prepared.context.tracking_uri, named=named
        )
    result = _result_of(
        prepared,
        summary,
        stop_reasons=[r.stop_reason for r in results if not r.replaced],
        trials_run=sum(r.trials for r in results),
        registered_model=registered,
        workers_replaced=sum(r.replaced for r in results),
    )
    if not interrupted and any(r.trials for r in results):
        result = dataclasses.replace(
            result, first_failure=_say_if_none_completed(prepared.study, result, results)
        )
    if interrupted:
        raise StudyInterrupted(result)
    if not result.trials_run and not result.records_caught_up:
        say_if_none_run(result.study_name, result.stop_reasons, result.trials_counted, experiment.budget)
    return result


def _say_if_none_completed(
    study: optuna.Study, result: StudyResult, results: list[WorkerResult]
) -> tuple[int, str] | None:
    """Warn of a study none of whose trials completed, naming the resume that runs them again.

    A plain resume runs nothing once their trials spent the budget: the warning names the
    ``--trials`` that does, as the CLI's error does (see
    :func:`~autotweak.engine._none_completed.go_on`).
    """
    spent, command = go_on(
        result.study_name, result.stop_reasons, result.trials_counted, lambda name: f"autotweak resume {name}"
    )
    resume = f"`{command}`" if spent else None  # else optimize(..., resume=True) runs them too
    return say_if_none_completed(
        study, result.summary, stopped=workers_stopped(results), resume=resume, spent=spent
    )


def _result_of(
    prepared: Prepared,
    summary: StudySummary,
    *,
    stop_reasons: list[str],
    trials_run: int,
    registered_model: str | None = None,
    workers_replaced: int = 0,
    first_failure: tuple[int, str] | None = None,
) -> StudyResult:
    """What a closed study did, as ``optimize`` returns it (and the ask/tell ``Study``'s Ctrl-C raises it)."""
    return StudyResult(
        summary=summary,
        study_name=prepared.experiment.name,
        storage=prepared.context.storage_url,
        tracking_uri=prepared.context.tracking_uri,
        study_run_id=prepared.context.study_run_id,
        stop_reasons=stop_reasons,
        registered_model=registered_model,
        unrecorded=prepared.unrecorded,
        best_config={}
        if summary.best_number is None
        else config_of(prepared.experiment, summary.best_params),
        trials_run=trials_run,
        trials_counted=BudgetView.of(prepared.study.get_trials(deepcopy=False), None).counted,
        records_caught_up=prepared.caught_up,
        workers_replaced=workers_replaced,
        first_failure=first_failure,
    )


def _close(
    prepared: Prepared, *, interrupted: bool, settle: float = 0.0, dropped: int | None = None
) -> StudySummary:
    """Bring the records in line with Optuna's trials, then write the study's summary.

    ``settle``: the records of trials finished less than this many seconds ago are left to
    their workers: the grace period where the workers outlive their executor's run (a spot
    instance's worker closes its trial as it shuts down), nothing where they were joined.
    Lost retries are queued with the grace period in every case (see
    :mod:`autotweak.engine._reconcile`). ``dropped``: the trial records this session's
    workers could not write (``None``: not known here; then the counts its workers kept on
    the study are summed, see :mod:`._lost_records`), said if the tracker is down now.

    The tracker is asked first whether it answers (one quick request): one that is down
    would make each of these writes wait out MLflow's four minutes of retries. Then the
    study closes in Optuna alone, says so once, with what MLflow lacks
    (:attr:`Prepared.unrecorded`), and its next opening writes that from Optuna's trials.
    The workers said when it went down, and when it came back (:mod:`._outage`); one back
    only now is said here.
    """
    prepared.unrecorded = prepared.tracker.unreachable()
    tracker = prepared.tracker if prepared.unrecorded is None else NullTracker()
    if prepared.unrecorded is None and (ctx := prepared.context).tracking_uri:
        OutageNotice(prepared.study, ctx.storage_url, ctx.session, ctx.tracking_uri).answered()
    store = prepared.context.storage_url
    prepared.caught_up += catch_up(prepared.study, tracker, prepared.experiment, settle=settle, store=store)
    summary = retrying(
        lambda: summarize(prepared.study, interrupted=interrupted), "summing up the study", store=store
    )
    try:
        _record_proposals(prepared, tracker)
        if prepared.context.session is not None:  # its line on the parent run, with the trials it finished
            record_session(
                tracker, prepared.context.study_run_id, prepared.study, prepared.context.session, ended=True
            )
        tracker.end_study(prepared.context.study_run_id, summary)
    except Exception as exc:
        raise AutotweakError(f"could not write the study summary to the tracker: {exc}") from exc
    if prepared.unrecorded is not None:
        note_outage(prepared.study, prepared.unrecorded)  # its resume writes the records as the outage's
        if dropped is None:  # workers that outlive the run (spot instances) kept their counts on the study
            dropped = records_dropped(prepared.study, prepared.context.session, wait=settle)
        _say_unrecorded(prepared, summary, dropped)
    return summary


def _say_unrecorded(prepared: Prepared, summary: StudySummary, dropped: int | None) -> None:
    """The one warning of a tracker that is down, whenever it went: what MLflow lacks, and what writes it.

    ``dropped``: how many trial records this session's workers could not write (missing,
    or left open), as a joined worker counts its own; ``None``: not known here.
    """
    name = prepared.study.study_name
    best = None if summary.best_number is None else prepared.study.trials[summary.best_number]
    registers = prepared.experiment.register_model and not summary.interrupted
    registers = registers and best is not None and MODEL_ATTR in best.user_attrs  # a model to register
    lacks = ["the study's summary and its best model's registration" if registers else "the study's summary"]
    if dropped is None:
        lacks.insert(0, "the records of the trials that ended while it was down")
    elif dropped:
        lacks.insert(0, f"{dropped} trial record(s) of this run (missing, or left open)")
    _log.warning(
        "study '%s' closed without its MLflow records: %s. Not in MLflow: %s. Every trial is in Optuna: "
        "once the server answers, `autotweak resume %s` (or optimize(..., resume=True)) writes %s",
        name,
        prepared.unrecorded,
        ", ".join(lacks) if registers or len(lacks) == 1 else f"{lacks[0]} and {lacks[1]}",
        name,
        "them" if len(lacks) > 1 else "it",
    )


def _record_proposals(prepared: Prepared, tracker: BaseTracker) -> None:
    """The meta-learner's proposals and how they scored, and its guard: on the study and its parent run.

    Only the meta sampler proposes: another's study is not searched for proposals, nor
    ``autotweak.meta`` imported (seconds, at the close of every study).
    """
    if prepared.experiment.sampler.name != "meta":
        return
    from autotweak.meta import PROPOSALS_ATTR, guard_of, proposals_of

    study = prepared.study
    proposals = proposals_of(study.get_trials(deepcopy=False), study.direction)
    guard = guard_of(study)
    if not proposals and guard is None:
        return
    study._storage.set_study_system_attr(study._study_id, PROPOSALS_ATTR, proposals)
    run_id = prepared.context.study_run_id
    if run_id is not None:
        tracker.log_proposals(run_id, proposals, guard)


def _log_progress(progress: Progress) -> None:
    for trial in progress.last_finished:
        _log.info("trial %d finished: %s value=%s", trial.number, trial.state.name.lower(), trial.value)
