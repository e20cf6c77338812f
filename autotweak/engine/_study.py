"""Creating, resuming and summarizing studies in Optuna's storage (the coordination truth)."""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from autotweak._config import base_values, merge_config
from autotweak._quiet import quiet_optuna
from autotweak.exceptions import AutotweakError, StudyMismatchError, StudyNotFoundError
from autotweak.spec import Experiment
from autotweak.spec._components import build_pruner, build_sampler, component_meta
from autotweak.tracking import StudySummary

__all__ = [
    "ATTR",
    "best_config",
    "config_of",
    "create_study",
    "load_study",
    "components_meta",
    "executor_text",
    "executors_of",
    "note_executor",
    "study_exists",
    "summarize",
    "state_of",
]

_log = logging.getLogger(__name__)


class ATTR:
    """Keys of the attributes autotweak keeps on Optuna studies and trials."""

    SPEC = "autotweak.spec"
    META = "autotweak.meta"
    RUN_ID = "autotweak.mlflow_run_id"  # on the study: its parent run
    TRACKING_URI = "autotweak.tracking_uri"
    BASELINE = "autotweak.baseline"
    RETRY_OF = "autotweak.retry_of"
    ROOT = "autotweak.root_trial"
    ATTEMPT = "autotweak.attempt"
    FAILURE = "autotweak.failure"
    CHECKPOINT_RUN = "autotweak.checkpoint_run"
    INTERRUPTED = "autotweak.interrupted"  # on a trial stopped by Ctrl-C: queued again, not a failure
    PREEMPTED = "autotweak.preempted"  # on a trial stopped by a spot notice or a lost storage: not a failure
    RECLAIMABLE = "autotweak.reclaimable"  # on a trial run on a spot machine: lost, it is preempted
    ABLATION = "autotweak.ablation"  # on a trial that ``report --ablate`` ran: not part of the search
    UID = "autotweak.study_uid"  # on the study: tells it from an earlier study of the same name
    STEPS_WARNED = "autotweak.steps_warned"  # on the study (system attr): its steps check was said
    EXECUTOR = "autotweak.executor"  # on the study: the ``meta`` of the executor of its latest session
    EXECUTORS = "autotweak.executors"  # on the study: the executors it ran on, in order (a change appends)


_STATES = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
}


def state_of(trial: FrozenTrial) -> str:
    """Autotweak's name for an Optuna trial state.

    Optuna knows these trials as failed, but their objective did not fail: a trial stopped by
    Ctrl-C is ``interrupted``, one stopped by a spot interruption notice or by a storage it
    could not reach is ``preempted``, as is one whose spot machine went away without a notice
    (failed by the stale-trial sweep, see :func:`~autotweak.engine._storage.fail_stale`); all
    are queued to run again.
    """
    if trial.state == TrialState.FAIL:
        if trial.user_attrs.get(ATTR.INTERRUPTED):
            return "interrupted"
        if trial.user_attrs.get(ATTR.PREEMPTED):
            return "preempted"
    return _STATES[trial.state]


def components_meta(experiment: Experiment) -> dict[str, dict[str, Any]]:
    """The ``meta`` of the sampler and pruner this experiment builds."""
    sampler = build_sampler(experiment.sampler, experiment.space, experiment.seed)
    pruner = build_pruner(experiment.pruner, experiment.metric)
    return {
        "sampler": component_meta("sampler", experiment.sampler, sampler),
        "pruner": component_meta("pruner", experiment.pruner, pruner),
    }


def study_exists(storage: BaseStorage, name: str) -> bool:
    """Whether a study called ``name`` is in ``storage``."""
    return any(s.study_name == name for s in storage.get_all_studies())


def create_study(experiment: Experiment, storage: BaseStorage) -> optuna.Study:
    """Create the study, record the spec and components, and enqueue the baseline."""
    if study_exists(storage, experiment.name):
        raise AutotweakError(
            f"a study named '{experiment.name}' already exists in the storage; continue it with "
            f"`autotweak resume {experiment.name}` (from Python: optimize(..., resume=True) or "
            f"autotweak.Study(..., resume=True); while it runs elsewhere, add workers to it with "
            f"`autotweak worker {experiment.name}`), or give the experiment another 'name'."
        )
    with quiet_optuna():  # no "A new study created in RDB" line from a library
        study = optuna.create_study(
            storage=storage, study_name=experiment.name, direction=experiment.metric.direction
        )
    study.set_user_attr(ATTR.UID, uuid.uuid4().hex[:12])
    study.set_user_attr(ATTR.SPEC, experiment.to_dict())
    study.set_user_attr(ATTR.META, components_meta(experiment))
    base = experiment.base_trial()
    if base is not None:
        study.enqueue_trial(base, user_attrs={ATTR.BASELINE: True})
    elif experiment.baseline and experiment.base:
        space = experiment.space
        missing = space.invalid(space.active(base_values(experiment.base, space.names)))
        _log.warning(
            "the base config does not set %s, which the tweaks search: no trial runs the base config to "
            "compare against (give %s in base, or set 'baseline: false' to say so)",
            ", ".join(missing) or "every tweaked parameter",
            "them" if len(missing) > 1 else "it",
        )
    return study


def load_study(name: str, storage: BaseStorage) -> optuna.Study:
    """Load an existing study, or say which studies the storage holds."""
    if not study_exists(storage, name):
        names = sorted(s.study_name for s in storage.get_all_studies())
        listing = ", ".join(names) if names else "none"
        raise StudyNotFoundError(f"no study named '{name}' in the storage (studies there: {listing}).")
    return optuna.load_study(study_name=name, storage=storage)


def check_resumable(study: optuna.Study, experiment: Experiment) -> None:
    """Refuse to resume with different components, space, metric or objective.

    The executor is left out: every executor runs the same worker loop with the study's
    sampler, pruner and objective, so trials run on local processes, spot instances or
    any number of workers stay comparable; :func:`note_executor` says when it changed.
    """
    stored_spec: Mapping[str, Any] = study.user_attrs.get(ATTR.SPEC, {})
    stored_meta: Mapping[str, Any] = study.user_attrs.get(ATTR.META, {})
    now_spec = experiment.to_dict()
    differences = [
        line
        for key, value in components_meta(experiment).items()
        for line in _differences(key, stored_meta.get(key), value)
    ]
    for key in ("tweaks", "metric", "objective", "base"):
        if key in stored_spec:
            differences.extend(_differences(key, stored_spec[key], now_spec[key]))
    stored_pruner: Mapping[str, Any] = stored_meta.get("pruner") or {}
    if (
        stored_pruner.get("name") == "median"
        and not stored_pruner.get("args")
        and experiment.pruner.name == "learned"
        and not experiment.pruner.args
    ):  # a spec that names no pruner, its study started before the default changed
        differences = [line for line in differences if not line.startswith("pruner.")]
        differences.insert(0, _DEFAULT_PRUNER_CHANGED)
    if differences:
        shown = differences[:_SHOWN_DIFFERENCES]
        if len(differences) > len(shown):
            shown.append(f"and {len(differences) - len(shown)} more")
        raise StudyMismatchError(
            f"study '{study.study_name}' was started with a different setup, so resuming it would "
            "mix incomparable trials; differences: " + "; ".join(shown) + ". Resume it with the setup "
            f"it was started with (`autotweak resume {study.study_name}` reads it from the study), or "
            "start a new study (`--name`)"
        )


def note_executor(study: optuna.Study, meta: Mapping[str, Any]) -> None:
    """Record the executor that runs this session's trials; say so when the last session's differed.

    Not refused (see :func:`check_resumable`), but it changes the search's path: with more
    workers at once, the sampler proposes each trial knowing fewer finished ones. The study
    keeps the latest executor and the ones before it (:func:`executors_of`).
    """
    now = json.loads(json.dumps(dict(meta), sort_keys=True, default=str))  # as the storage keeps it
    attrs = study.user_attrs
    stored = attrs.get(ATTR.EXECUTOR)
    if stored == now:
        return
    study.set_user_attr(ATTR.EXECUTORS, [*executors_of(attrs), now][-_KEPT_EXECUTORS:])
    if stored is not None:
        _log.info(
            "study '%s' resumes on %s; it last ran on %s. Its trials stay comparable (the executor is "
            "not part of the setup a resume checks); how many trials run at once changes how many the "
            "sampler proposes before it sees their results",
            study.study_name,
            executor_text(now),
            executor_text(stored),
        )
    study.set_user_attr(ATTR.EXECUTOR, now)


_KEPT_EXECUTORS = 20  # the history's latest changes: it is a tag of the parent run too


def executors_of(attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The executors a study ran on, from its user attrs: oldest first, the latest session's last.

    A study begun before the history was kept has its latest one only; one never noted has none.
    """
    history = attrs.get(ATTR.EXECUTORS)
    if history:
        return [dict(meta) for meta in history]
    latest = attrs.get(ATTR.EXECUTOR)
    return [] if latest is None else [dict(latest)]


def executor_text(meta: Mapping[str, Any]) -> str:
    """``processes (workers=4)``: an executor's name and its other arguments."""
    args = ", ".join(f"{k}={v}" for k, v in meta.items() if k != "name")
    return str(meta.get("name", "an unnamed executor")) + (f" ({args})" if args else "")


_SHOWN_DIFFERENCES = 8
_DEFAULT_PRUNER_CHANGED = (
    "pruner: stored 'median', now 'learned' (the default pruner of a spec that names none is "
    "'learned' since 2026-11-28, Optuna's MedianPruner() before: add `pruner: median` to the spec "
    "to resume it with the rule it started with)"
)
_ABSENT = object()


def _differences(path: str, stored: Any, now: Any) -> list[str]:
    """Where two spec values differ, as ``path: stored X, now Y`` down to the values that differ.

    Example:
        >>> _differences("tweaks", {"x": {"low": 0, "high": 1}}, {"x": {"low": 0, "high": 2}})
        ['tweaks.x.high: stored 1, now 2']
    """
    if isinstance(stored, Mapping) and isinstance(now, Mapping):
        out: list[str] = []
        for key in [*stored, *(k for k in now if k not in stored)]:
            out.extend(_differences(f"{path}.{key}", stored.get(key, _ABSENT), now.get(key, _ABSENT)))
        return out
    if stored == now:
        return []
    shown = ["absent" if value is _ABSENT else repr(value) for value in (stored, now)]
    return [f"{path}: stored {shown[0]}, now {shown[1]}"]


def steps_of(study: optuna.Study) -> int | None:
    """Report steps in one full training, as declared by the study's spec."""
    steps = study.user_attrs.get(ATTR.SPEC, {}).get("metric", {}).get("steps")
    return int(steps) if steps else None


def frozen_compute(
    trial: FrozenTrial, steps: int | None, attempts: Callable[[int], FrozenTrial | None] | None = None
) -> float:
    """Full-training equivalents a trial spent, read from its state and reported steps.

    ``attempts`` looks up the study's trials by number (:func:`attempts_of`): with it, a retry
    that resumed from a checkpoint is charged as its training counts its steps, from 0 or 1
    (:func:`training_first`); without it, from 1.
    """
    reported = trial.intermediate_values
    state = "complete" if trial.state == TrialState.COMPLETE else "partial"
    return trial_compute(
        state,
        (min(reported), max(reported)) if reported else None,
        steps,
        retry=ATTR.RETRY_OF in trial.user_attrs,
        training_first=None if attempts is None else lambda: training_first(trial, attempts),
    )


def attempts_of(trials: list[FrozenTrial]) -> Callable[[int], FrozenTrial | None]:
    """Look ``trials`` up by number; indexed at the first look-up, which most summaries never make."""
    index: dict[int, FrozenTrial] = {}

    def attempt(number: int) -> FrozenTrial | None:
        if not index:
            index.update((t.number, t) for t in trials)
        return index.get(number)

    return attempt


def training_first(trial: FrozenTrial, attempts: Callable[[int], FrozenTrial | None]) -> int | None:
    """The step at which ``trial``'s training first reported, over its attempts.

    A retry that resumed from a checkpoint reports from where the attempt before it
    stopped; the attempt that started the training (its first report at step 0 or 1) says
    whether the trial counts its steps from 0. ``attempts`` looks an earlier attempt up by
    its number (``None`` if it cannot). ``None`` if no attempt reported.
    """
    first: int | None = None
    current: FrozenTrial | None = trial
    seen: set[int] = set()
    while current is not None and current.number not in seen:
        seen.add(current.number)
        if current.intermediate_values:
            first = min(current.intermediate_values)
            if first <= 1:
                break
        retry_of = current.user_attrs.get(ATTR.RETRY_OF)
        current = None if retry_of is None else attempts(int(retry_of))
    return first


def study_compute(trials: list[FrozenTrial], steps: int | None) -> float:
    """Full-training equivalents the search spent in ``trials`` (running ones count what they read).

    Trials that ``report --ablate`` ran are counted apart (see :func:`search_trials`).
    """
    attempts = attempts_of(trials)
    return sum(
        frozen_compute(t, steps, attempts) for t in search_trials(trials) if t.state != TrialState.WAITING
    )


def search_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The study's search: its trials less those ``report --ablate`` ran, which spend no budget."""
    return [t for t in trials if not t.user_attrs.get(ATTR.ABLATION)]


def trial_compute(
    state: str,
    reported: tuple[int, int] | None,
    steps: int | None,
    *,
    retry: bool = False,
    training_first: Callable[[], int | None] | None = None,
) -> float:
    """Full-training equivalents: 1 for a finished trial, the share of steps read otherwise.

    Steps count from 1 (step ``s`` means ``s/steps`` of a training done); a training that
    first reported at step 0 counts from 0, and its step ``s`` means ``s + 1`` steps ran.

    Args:
        state: ``"complete"``, or anything else for a trial that stopped early.
        reported: The first and last steps the trial reported, or ``None``.
        steps: Steps in one full training (``metric.steps``), if known.
        retry: Whether the trial is another attempt of one that did not finish. A retry
            whose first report comes after step 1 resumed from a checkpoint: it is charged
            only the steps it ran, the earlier attempt having been charged the rest.
        training_first: For such a retry, finds the step at which its training first
            reported, over its attempts; called only where the answer changes the charge
            (a retry that finished its training). Without it the training counts from 1.
    """
    if reported is not None and _from_zero(state, reported, steps, retry, training_first):
        reported = (reported[0] + 1, reported[1] + 1)
    start = reported[0] - 1 if retry and reported is not None and reported[0] > 1 else 0
    if state == "complete" and not start:
        return 1.0
    if reported is None:
        return 0.0
    if steps is None:
        return 1.0
    end = steps if state == "complete" else min(reported[1], steps)
    return max(end - start, 0) / steps


def _from_zero(
    state: str,
    reported: tuple[int, int],
    steps: int | None,
    retry: bool,
    training_first: Callable[[], int | None] | None,
) -> bool:
    """Whether the trial's training counts its steps from 0, looked up only where it changes the charge.

    A resumed retry is charged ``last - first + 1`` steps either way, unless it ended its
    training: then the steps left to the end are one fewer when counted from 0.
    """
    first, last = reported
    if first <= 1 or not retry:
        return first == 0
    ended = steps is not None and (state == "complete" or last >= steps)
    return ended and training_first is not None and training_first() == 0


def config_of(experiment: Experiment, params: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's full config from its Optuna params: what ``Trial.config`` held when it ran.

    The base config updated with the tweaks, fixed ones included (Optuna keeps no param
    for those).
    """
    return merge_config(experiment.base, experiment.space.active(params))


def best_config(study: optuna.Study, summary: StudySummary) -> dict[str, Any]:
    """The best trial's full config, from the spec the study keeps (its params alone without one)."""
    if summary.best_number is None:
        return {}
    spec = study.user_attrs.get(ATTR.SPEC)
    if not spec:
        return dict(summary.best_params)
    experiment = Experiment.from_dict(spec, source=f"<study {study.study_name}>", check_objective=False)
    return config_of(experiment, summary.best_params)


def summarize(study: optuna.Study, *, interrupted: bool = False) -> StudySummary:
    """Counts by state, the best trial, the baseline's value and the compute spent."""
    trials = study.get_trials(deepcopy=False)
    search = search_trials(trials)  # an ablation trial is a measurement for the report, not the search's
    counts = Counter(state_of(t) for t in search)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    found = search_trials(complete)
    best: FrozenTrial | None = None
    if found:
        pick = max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min
        best = pick(found, key=lambda t: float(t.value))  # type: ignore[arg-type]
    base = _base_trial(study, complete)
    compute = study_compute(trials, steps_of(study))
    return StudySummary(
        study_name=study.study_name,
        counts={state: counts.get(state, 0) for state in _COUNTED},
        best_number=None if best is None else best.number,
        best_value=None if best is None else best.value,
        best_params={} if best is None else dict(best.params),
        base_value=None if base is None else base.value,
        compute=compute if math.isfinite(compute) else 0.0,
        interrupted=interrupted,
    )


_COUNTED = ("complete", "pruned", "failed", "preempted", "interrupted", "running", "waiting")


def _base_trial(study: optuna.Study, complete: list[FrozenTrial]) -> FrozenTrial | None:
    """The trial that measured the base config: the baseline, else one with the same values.

    ``report --ablate`` measures the base config of a study that had no baseline trial.
    """
    marked = next((t for t in complete if t.user_attrs.get(ATTR.BASELINE)), None)
    spec = study.user_attrs.get(ATTR.SPEC)
    if marked is not None or not complete or not spec:
        return marked
    experiment = Experiment.from_dict(spec, source=f"<study {study.study_name}>", check_objective=False)
    point = experiment.with_overrides(baseline=True).base_trial()
    if not point:
        return None
    return next((t for t in complete if _same_values(t.params, point)), None)


def _same_values(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if a.keys() != b.keys():
        return False
    return all(
        math.isclose(float(a[k]), float(b[k]), rel_tol=1e-9)
        if isinstance(a[k], int | float) and isinstance(b[k], int | float)
        else a[k] == b[k]
        for k in a
    )
