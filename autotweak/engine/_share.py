"""Share the winner: register the best trial's model in the MLflow Model Registry with its lineage.

This module talks to MLflow itself, not through the tracker seam: a model registry is
MLflow's, not a thing every tracker has, and ``autotweak report --register`` registers a
finished study's winner with no tracker running, from its tracking URI alone. The model
it registers is the one ``trial.log_model`` kept through the tracker: its address (the
trial's user attr ``autotweak.model``) must be an MLflow run's, ``runs:/<run id>/model``,
else registering says so.
"""

from __future__ import annotations

import json
import logging
import os

import optuna
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from autotweak._locations import redact
from autotweak.engine._study import ATTR
from autotweak.engine._summary import summarize
from autotweak.engine._trial import MODEL_ATTR
from autotweak.exceptions import AutotweakError, TrackingError
from autotweak.tracking import StudySummary, check_tracking_server, register_model

__all__ = ["register_best_model", "register_winner"]

_log = logging.getLogger(__name__)

_REGISTERED_TRIAL = "autotweak.registered_trial"
_RUNS = "runs:/"
_LINEAGE = ("autotweak.git_commit", "autotweak.git_dirty", "autotweak.version.autotweak", "autotweak.host")


class _RegistryDown(TrackingError):
    """The model registry does not answer: registering later waits until it does, or another is named."""


def register_best_model(study: optuna.Study, name: str, tracking_uri: str) -> ModelVersion:
    """Register the model the best trial logged as a new version of ``name``.

    The version's source is ``runs:/<best trial's run>/model``; its tags hold the study,
    trial number, metric and value, config and the code version the trial ran with.

    Example:
        >>> version = register_best_model(study, "digits-mlp", uri)  # doctest: +SKIP
        >>> version.version  # doctest: +SKIP
        '1'

    Raises:
        AutotweakError: If no trial completed, the best trial logged no model, its model is
            not kept in an MLflow run, ``tracking_uri`` does not hold that run, or the
            registry's server or the tracking server does not answer (one request each, no
            retries).
    """
    return _register(study, summarize(study), name, tracking_uri)


def _register(study: optuna.Study, summary: StudySummary, name: str, tracking_uri: str) -> ModelVersion:
    if summary.best_number is None:
        raise AutotweakError(f"study '{study.study_name}' has no completed trial, so no model to register.")
    best = study.trials[summary.best_number]
    client = MlflowClient(tracking_uri=tracking_uri)
    # MLflow retries an unreachable registry for minutes, silent: a study would end that late,
    # and `report --register` would hang as long
    registry = str(getattr(client, "_registry_uri", tracking_uri))
    try:
        check_tracking_server(registry, fix=_registry_fix(registry), what="model registry")
    except TrackingError as exc:
        raise _RegistryDown(str(exc)) from None
    if registry != tracking_uri:  # the model's run is read there first, retried as long
        check_tracking_server(tracking_uri, fix="start it: the best trial's model is kept in its runs")
    run = _model_run(client, study.study_name, best)
    run_id = run.info.run_id
    spec = study.user_attrs.get(ATTR.SPEC, {})
    metric = str(spec.get("metric", {}).get("name", "value"))
    tags = {
        "autotweak.study": study.study_name,
        "autotweak.trial_number": str(best.number),
        "autotweak.study_run_id": str(study.user_attrs.get(ATTR.RUN_ID, "")),
        "autotweak.metric": metric,
        f"autotweak.{metric}": f"{summary.best_value:.10g}",
        "autotweak.config": run.data.tags.get("autotweak.config", json.dumps(best.params, default=str)),
        **{k: v for k, v in run.data.tags.items() if k in _LINEAGE},
    }
    description = (
        f"Best trial {best.number} of study '{study.study_name}': {metric} = {summary.best_value:.6g}."
    )
    version = register_model(client, name, run_id, tags=tags, description=description)
    parent = study.user_attrs.get(ATTR.RUN_ID)
    if parent:
        client.set_tag(str(parent), "autotweak.registered_model", f"{name}/{version.version}")
        client.set_tag(str(parent), _REGISTERED_TRIAL, str(best.number))
    _log.info("registered trial %d's model as %s version %s", best.number, name, version.version)
    return version


def _registry_fix(registry: str) -> str:
    """What makes ``registry`` answer: while MLFLOW_REGISTRY_URI names it, starting it or changing that."""
    if os.environ.get("MLFLOW_REGISTRY_URI") == registry:  # unset, the tracking server is the registry
        return "start it, or fix or unset MLFLOW_REGISTRY_URI, which names it"
    return "start it"


def _model_run(client: MlflowClient, study_name: str, best: optuna.trial.FrozenTrial) -> Run:
    """The MLflow run that holds the model ``best`` logged."""
    where = f"the best trial ({best.number}) of study '{study_name}'"
    uri = str(best.user_attrs.get(MODEL_ATTR) or "")
    if not uri:
        raise AutotweakError(
            f"{where} logged no model; the objective must save it and call trial.log_model(path)."
        )
    if not uri.startswith(_RUNS):
        raise AutotweakError(
            f"{where} kept its model at {uri!r}, not in an MLflow run ({_RUNS}<run id>/model): only a "
            "model its MLflow tracker kept can go to the MLflow Model Registry."
        )
    run_id = uri[len(_RUNS) :].split("/", 1)[0]
    try:
        return client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":  # the store failed: its own error says how
            raise
        raise AutotweakError(
            f"{where} kept its model in MLflow run {run_id}, which tracking URI "
            f"{redact(str(client.tracking_uri))} does not hold; give the study's own --tracking-uri."
        ) from exc


def register_winner(
    study: optuna.Study, summary: StudySummary, name: str, tracking_uri: str, *, named: bool = False
) -> str | None:
    """At the end of a study: register the best trial's model unless it has none or is registered.

    ``named``: the spec's ``register_model`` names the model, so a best trial without one is
    warned of (the default, registering where a model was logged, says nothing then).

    Returns:
        ``"name/version"`` of the new version, or ``None`` when nothing was registered
        (no completed trial, no logged model, this trial's model already registered by an
        earlier run of the study, or the registry refused: logged, the study's results stand).
    """
    if summary.best_number is None:
        return None
    if MODEL_ATTR not in study.trials[summary.best_number].user_attrs:
        if named:
            _log.warning(
                "'register_model' names model '%s', but study '%s' registered none: its best trial, %d, "
                "logged no model; the objective keeps one with trial.log_model(path)",
                name,
                study.study_name,
                summary.best_number,
            )
        return None
    parent = study.user_attrs.get(ATTR.RUN_ID)
    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        done = client.get_run(str(parent)).data.tags.get(_REGISTERED_TRIAL) if parent else None
        if done == str(summary.best_number):
            return None
        version = _register(study, summary, name, tracking_uri)
    except Exception as exc:
        _log.warning(
            "could not register the best trial's model as '%s' %s", name, _later(exc, study.study_name)
        )
        _log.debug("the registry's refusal", exc_info=True)
        return None
    return f"{name}/{version.version}"


def _later(refusal: Exception, study_name: str) -> str:
    """Why the study's end registered no model, and when ``report --register`` can register it."""
    command = f"`autotweak report {study_name} --register NAME`"
    if isinstance(refusal, _RegistryDown):  # the command asks the same registry: it waits for the fix
        return f"({refusal}); the study's results stand: after that, {command} registers it"
    return f"({type(refusal).__name__}: {refusal}); the study's results stand: {command} registers it later"
