"""Creating and resuming studies in Optuna's storage (the coordination truth)."""

from __future__ import annotations

import difflib
import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from autotweak._config import base_values, flat_config
from autotweak._locations import WHERE_STORAGE
from autotweak._quiet import quiet_optuna
from autotweak.exceptions import StudyExistsError, StudyMismatchError, StudyNotFoundError
from autotweak.spec import Experiment
from autotweak.spec._components import build_pruner, build_sampler, component_meta

__all__ = [
    "ATTR",
    "config_of",
    "create_study",
    "load_study",
    "components_meta",
    "executor_text",
    "executors_of",
    "note_executor",
    "study_exists",
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
    RUNS_AGAIN = "autotweak.runs_again"  # on a dead worker's or preempted trial as it fails: its retry counts
    ABLATION = "autotweak.ablation"  # on a trial that ``report --ablate`` ran: not part of the search
    UID = "autotweak.study_uid"  # on the study: tells it from an earlier study of the same name
    STEPS_WARNED = "autotweak.steps_warned"  # on the study (system attr): its steps check was said
    EXECUTOR = "autotweak.executor"  # on the study: the ``meta`` of the executor of its latest session
    EXECUTORS = "autotweak.executors"  # on the study: the executors it ran on, in order (a change appends)
    SESSION = "autotweak.session"  # on a trial: its session's id (on the study, SESSION.<id>: its record)
    CURVE_MS = "autotweak.curve_ms."  # on a trial (system attr), per flush: its points' [[step, stamp], ...]


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
    (failed by the stale-trial sweep, see :func:`~autotweak.engine._stale.fail_stale`); all
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


# Executors `autotweak resume --executor` names, whose workers run elsewhere than this machine.
_CLI_REMOTE_EXECUTORS = ("aws-spot",)


def study_exists(storage: BaseStorage, name: str) -> bool:
    """Whether a study called ``name`` is in ``storage``."""
    return any(s.study_name == name for s in storage.get_all_studies())


def create_study(experiment: Experiment, storage: BaseStorage, executor: str | None = None) -> optuna.Study:
    """Create the study, record the spec and components, and enqueue the baseline.

    ``executor`` names the executor this session would run on: the hint to resume a study
    that exists already runs it there (``autotweak resume`` alone runs it on this machine).
    """
    if study_exists(storage, experiment.name):
        raise _exists(experiment.name, executor)
    try:
        with quiet_optuna():  # no "A new study created in RDB" line from a library
            study = optuna.create_study(
                storage=storage, study_name=experiment.name, direction=experiment.metric.direction
            )
    except optuna.exceptions.DuplicatedStudyError:  # made by another process since the check above
        raise _exists(experiment.name, executor) from None
    study.set_user_attr(ATTR.UID, uuid.uuid4().hex[:12])
    study.set_user_attr(ATTR.SPEC, experiment.to_dict())
    study.set_user_attr(ATTR.META, components_meta(experiment))
    doubt = experiment.metric.direction_doubt
    if doubt is not None:  # maximizing a loss finds the worst config, and says nothing of it
        _log.warning(
            "'metric.direction' is %s, but %s: the study looks for the %s value; if that is wrong, "
            "fix the direction and start the study again under a new name",
            experiment.metric.direction,
            doubt,
            "highest" if experiment.metric.direction == "maximize" else "lowest",
        )
    base = experiment.base_trial()
    if base is not None:
        study.enqueue_trial(base, user_attrs={ATTR.BASELINE: True})
    elif experiment.baseline and experiment.base:
        space = experiment.space
        missing = space.invalid(space.active(base_values(experiment.base, space.names)))
        _log.warning(
            "the base config does not set %s, which the tweaks search%s: no trial runs the base config to "
            "compare against (give %s in base, or set 'baseline: false' to say so)",
            ", ".join(missing) or "every tweaked parameter",
            _misspelled(experiment.base, missing, space.names),
            "them" if len(missing) > 1 else "it",
        )
    return study


def _misspelled(base: Mapping[str, Any], missing: list[str], names: list[str]) -> str:
    """`` (base sets 'widht': did you mean 'width'?)`` for a key of ``base`` near a parameter it misses."""
    keys = [key for key in flat_config(base) if key not in names]
    said = []
    for name in missing:
        near = difflib.get_close_matches(name, keys, n=1)
        if near:
            said.append(f"base sets '{near[0]}': did you mean '{name}'?")
    return f" ({'; '.join(said)})" if said else ""


def _exists(name: str, executor: str | None) -> StudyExistsError:
    remote = f" --executor {executor}" if executor in _CLI_REMOTE_EXECUTORS else ""
    return StudyExistsError(
        f"a study named '{name}' already exists in the storage; continue it with "
        f"`autotweak resume {name}{remote}` (from Python: optimize(..., resume=True) or "
        f"autotweak.Study(..., resume=True); while it runs elsewhere, add workers to it with "
        f"`autotweak worker {name}`), or give the experiment another 'name'."
    )


def load_study(name: str, storage: BaseStorage) -> optuna.Study:
    """Load an existing study, or say which studies the storage holds."""
    if not study_exists(storage, name):
        from autotweak.engine._storage import storage_name  # it imports this module

        names = sorted(s.study_name for s in storage.get_all_studies())
        raise StudyNotFoundError(
            f"no study named '{name}'{_near(name, names)} in the storage {storage_name(storage)} "
            f"(studies there: {_listed(names)}); check the name, or give the storage that holds the "
            f"study: {WHERE_STORAGE}."
        )
    return optuna.load_study(study_name=name, storage=storage)


def _near(name: str, names: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the study name nearest to a misspelled one, else nothing."""
    close = difflib.get_close_matches(name, names, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _listed(names: list[str], most: int = 20) -> str:
    """The names, the first ``most`` of them where there are more (a team's storage holds hundreds)."""
    if not names:
        return "none"
    more = f" and {len(names) - most} more: `autotweak status` lists them all" if len(names) > most else ""
    return ", ".join(names[:most]) + more


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
            stored, now = stored_spec[key], now_spec[key]
            if key == "tweaks":  # a domain or description changed since does not change what it searches
                stored, now = _searched(stored), _searched(now)
            differences.extend(_differences(key, stored, now))
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
            "start a new study (another 'name' in the spec; `--name` on the command line)."
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


_NOT_SEARCHED = ("domain", "description")  # what a parameter may take at all, and what it is for


def _searched(tweaks: Any) -> Any:
    """A spec's ``tweaks`` without their parameters' ``domain`` and ``description``: what is searched."""
    params = tweaks.get("params") if isinstance(tweaks, Mapping) else None
    if not isinstance(params, Mapping):
        return tweaks
    kept = {
        name: {k: v for k, v in definition.items() if k not in _NOT_SEARCHED}
        if isinstance(definition, Mapping)
        else definition
        for name, definition in params.items()
    }
    return {**tweaks, "params": kept}


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


def config_of(experiment: Experiment, params: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's full config from its Optuna params: what ``Trial.config`` held when it ran.

    See :meth:`~autotweak.spec.Experiment.trial_config`: fixed tweaks are filled in (Optuna
    keeps no param for those), inactive conditional ones left out.
    """
    return experiment.trial_config(params)
