"""MLflow tracking: study = parent run, trial = child run, always through ``MlflowClient``.

Writes are batched (one ``log_batch`` per trial end), since a call per metric costs
about five times more against a SQLite store.

A trial's learning curve is every value Optuna keeps for it, non-finite ones included: a
diverged trial's ``nan`` and ``inf`` reports are logged too. MLflow keeps ``nan`` in every
store; its SQL stores (SQLite, PostgreSQL, a tracking server on one) keep ``inf`` and
``-inf`` as the largest float, ``±1.7976931348623157e308``, which readers take as infinite.
``final_<metric>`` is logged only when the trial's value is finite.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# MLflow 3 sends usage telemetry unless told not to; autotweak talks only to the stores you name.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# Closing a run on a tracking server otherwise prints its URL to stdout (and fetches the run
# again to do so) for every trial; the CLI says where to look once.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException

from autotweak._locations import artifact_root, create_whole, enable_wal, redact, sqlite_path
from autotweak.exceptions import TrackingError
from autotweak.tracking import _mlflow_lookup as lookup
from autotweak.tracking._base import BaseTracker
from autotweak.tracking._inflight import IN_FLIGHT
from autotweak.tracking._mlflow_catchup import (
    CONFIG_FILE_TAG,
    CONFIG_TAG,
    missing_points,
    new_points,
    stored_config,
)
from autotweak.tracking._mlflow_parent import close_stray_parents, meta_tags
from autotweak.tracking._mlflow_values import (
    as_text,
    config_params,
    experiment_artifacts,
    metric_entities,
    now_ms,
    spec_params,
    summary_dict,
    tag_entities,
)
from autotweak.tracking._models import upload_model
from autotweak.tracking._records import (
    RECONCILED_TAG,
    StudyInfo,
    StudySummary,
    TrialRecord,
    TrialStart,
    TrialState,
)
from autotweak.tracking._server import check_tracking_server

__all__ = ["MlflowTracker", "RUN_STATUS"]

_log = logging.getLogger(__name__)

RUN_STATUS = {
    "complete": RunStatus.to_string(RunStatus.FINISHED),
    "pruned": RunStatus.to_string(RunStatus.KILLED),
    "failed": RunStatus.to_string(RunStatus.FAILED),
    "preempted": RunStatus.to_string(RunStatus.KILLED),
    "interrupted": RunStatus.to_string(RunStatus.KILLED),  # Ctrl-C: queued to run again, as preempted
}
_CLOSED = frozenset(RUN_STATUS.values())  # a trial record's statuses once closed (not RUNNING)
_BATCH = 800  # with 100 params and 100 tags: MLflow takes 1000 entities per request
_PARAM_BATCH = 100
# MLflow error codes for a write the store will never take; others (a server away) may pass later.
_REFUSALS = frozenset({"INVALID_PARAMETER_VALUE", "BAD_REQUEST", "RESOURCE_DOES_NOT_EXIST"})
_CHECKPOINT_TAG = "autotweak.checkpoint"  # "kept": the run's checkpoint/ artifacts were uploaded in full
_TAG_LIMIT = 8000  # characters in a tag's value, in every MLflow store
_CONFIG_FILE = "config.json"
# A trial's close that took this long waited out MLflow's retries (its first backs off 2 s): a
# catch-up in another process may have closed the record meanwhile, tagging it as its own.
_LATE_S = 2.0


def _make_tables(uri: str, *, artifacts: str | None) -> None:
    """MLflow's tables, migrated, in the new SQLite database at ``uri``."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    chatty = logging.getLogger("mlflow.store.db.utils")  # "Creating initial MLflow database tables..."
    level = chatty.level
    chatty.setLevel(logging.WARNING)  # a library says nothing a user did not ask for
    try:
        SqlAlchemyStore(uri, artifacts or "./mlruns").engine.dispose()  # type: ignore[no-untyped-call]
    finally:
        chatty.setLevel(level)


class MlflowTracker(BaseTracker):
    """Records a study in one MLflow experiment named after it.

    Args:
        tracking_uri: Any MLflow tracking URI (SQLite file, tracking server, ...).
    """

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        path = sqlite_path(tracking_uri)
        if path is not None:
            create_whole(path, functools.partial(_make_tables, artifacts=artifact_root(tracking_uri)))
            enable_wal(path)
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self._experiment_ids: dict[str, str] = {}
        self._configs: dict[str, dict[str, Any]] = {}

    @property
    def meta(self) -> dict[str, Any]:
        return {"name": "mlflow", "tracking_uri": redact(self.tracking_uri)}

    @property
    def threaded_writes(self) -> bool:
        """A tracking server's round trips overlap the trials; a local store's Python does not."""
        return self.tracking_uri.split(":", 1)[0] in ("http", "https", "databricks")

    # -- study ----------------------------------------------------------------------
    def experiment_id(self, study_name: str) -> str:
        """The id of the MLflow experiment of ``study_name``, created if needed."""
        if study_name not in self._experiment_ids:
            found = self.client.get_experiment_by_name(study_name)
            if found is not None:
                self._experiment_ids[study_name] = found.experiment_id
            else:
                self._experiment_ids[study_name] = self.client.create_experiment(
                    study_name,
                    artifact_location=experiment_artifacts(self.tracking_uri, study_name),
                    tags={"autotweak.study": study_name},
                )
        return self._experiment_ids[study_name]

    def start_study(self, info: StudyInfo, run_id: str | None = None) -> str:
        """Open the study's parent run, or reopen it.

        Reopened, its ``autotweak.meta.*`` tags and ``meta.json`` are rewritten: they say this
        session's components (the executor may change from one session to the next).
        """
        if run_id is not None:
            self.client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
            resumed = {"autotweak.resumed_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **meta_tags(info.meta)}
            self._log(run_id, tags=tag_entities(resumed.items()))
            self.client.log_dict(run_id, info.meta, "meta.json")
            return run_id
        tags = {
            "autotweak.kind": "study",
            "autotweak.study": info.study_name,
            "autotweak.storage": redact(info.storage),
            **meta_tags(info.meta),
            **info.tags,
        }
        run = self.client.create_run(self.experiment_id(info.study_name), tags=tags, run_name=info.study_name)
        run_id = run.info.run_id
        try:
            self._log(run_id, params=spec_params(info.spec))
            self.client.log_dict(run_id, info.spec, "spec.json")
            self.client.log_dict(run_id, info.meta, "meta.json")
            # A study resumed by name has no file (its source reads "<study NAME>"): spec.json is the spec.
            if info.source_file and Path(info.source_file).is_file():
                self.client.log_artifact(run_id, info.source_file)
            experiment = self.experiment_id(info.study_name)
            close_stray_parents(self.client, experiment, info.study_name, tags["autotweak.storage"], run_id)
        except BaseException as exc:  # a Ctrl-C leaves a run that nothing will use: it is deleted
            self._abandon(run_id, delete=not isinstance(exc, Exception))
            raise
        return run_id

    def _abandon(self, run_id: str, *, delete: bool) -> None:
        """Close (or ``delete``) a parent run that could not be written in full; the study is not started."""
        try:
            if delete:
                self.drop_study(run_id)
            else:
                self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        except Exception as exc:  # the store is failing already: the first error is the one to raise
            _log.debug("could not close the unfinished parent run %s: %s", run_id, exc)

    def drop_study(self, run_id: str) -> None:
        self.client.delete_run(run_id)

    def end_study(self, run_id: str | None, summary: StudySummary) -> None:
        if run_id is None:
            return
        metrics = {f"n_{state}": float(n) for state, n in summary.counts.items()}
        metrics["compute_full_trainings"] = summary.compute
        if summary.best_value is not None:
            metrics["best_value"] = summary.best_value
        if summary.base_value is not None:
            metrics["base_value"] = summary.base_value
        tags = {f"autotweak.best.{k}": str(v) for k, v in summary.best_params.items()}
        if summary.best_number is not None:
            tags["autotweak.best_trial"] = str(summary.best_number)
        self._log(run_id, metrics=metric_entities(metrics.items()), tags=tag_entities(tags.items()))
        self.client.log_dict(run_id, summary_dict(summary), "summary.json")
        status = RunStatus.KILLED if summary.interrupted else RunStatus.FINISHED
        self.client.set_terminated(run_id, RunStatus.to_string(status))

    def unreachable(self) -> str | None:
        """Ask a tracking server once (5 s, no retry): MLflow's client would retry for four minutes."""
        try:
            check_tracking_server(self.tracking_uri, fix="start it again")
        except TrackingError as exc:
            return str(exc)
        return None

    # -- trials ---------------------------------------------------------------------
    def start_trial(self, start: TrialStart) -> str:
        tags = {
            **start.tags,
            "autotweak.kind": "trial",
            "autotweak.study": start.study_name,
            "autotweak.trial_number": str(start.number),
            "autotweak.optuna_trial_id": str(start.trial_id),
            "autotweak.attempt": str(start.attempt),
            "autotweak.seed": str(start.seed),
            "autotweak.state": "running",
            **start.provenance,
        }
        config = as_text(start.config)
        if len(config) <= _TAG_LIMIT:
            tags[CONFIG_TAG] = config
        else:  # cut JSON could not be read back to close a crashed worker's record: an artifact instead
            tags[CONFIG_FILE_TAG] = _CONFIG_FILE
        if start.retry_of is not None:
            tags["autotweak.retry_of"] = str(start.retry_of)
        if start.study_run_id is not None:
            tags["mlflow.parentRunId"] = start.study_run_id
        with IN_FLIGHT.opening(start.study_name, start.trial_id):  # a catch-up opens no second one meanwhile
            run = self.client.create_run(
                self.experiment_id(start.study_name), tags=tags, run_name=f"trial-{start.number:04d}"
            )
        run_id: str = run.info.run_id
        if CONFIG_FILE_TAG in tags:
            self.client.log_text(run_id, config, _CONFIG_FILE)
        self._configs[run_id] = start.config
        return run_id

    def log_steps(self, run_id: str, metric: str, steps: Sequence[tuple[int, float, int]]) -> None:
        """Write curve points; to a run opened elsewhere (a crash's, restored), only those it lacks."""
        metrics = [Metric(metric, v, ts, s) for s, v, ts in steps]
        if run_id not in self._configs:
            metrics = new_points(self.client, run_id, metric, metrics)
        self._log(run_id, metrics=metrics)

    def end_trial(self, record: TrialRecord) -> None:
        began = time.monotonic()
        now = now_ms()
        metrics = [Metric(record.metric, v, ts, s) for s, v, ts in record.steps]
        finals = {"duration_s": record.duration, **record.extra_metrics}
        if record.value is not None and math.isfinite(record.value):
            finals[f"final_{record.metric}"] = record.value
        if record.compute is not None:
            finals["compute"] = record.compute
        metrics += metric_entities(finals.items(), now)
        tags = {"autotweak.state": record.state, **record.extra_tags}
        if record.failure:
            tags["autotweak.failure"] = record.failure[:4000]
        config = self._configs.pop(record.run_id, None)
        stale = False  # a catch-up's tag on a record that holds the trial's own close now
        own = RECONCILED_TAG not in record.extra_tags  # the trial's own close, not a catch-up's
        if config is None:  # a record this process did not open, or closed from Optuna's trial already
            metrics, config, reconciled = missing_points(self.client, record.run_id, record.metric, metrics)
            stale = reconciled and own
        self._log(
            record.run_id, metrics=metrics, params=config_params(config), tags=tag_entities(tags.items())
        )
        if own and not stale and time.monotonic() - began >= _LATE_S:  # a catch-up may have been first
            stale = RECONCILED_TAG in self.client.get_run(record.run_id).data.tags
        if stale:
            self.client.delete_tag(record.run_id, RECONCILED_TAG)
        if record.traceback:
            self.client.log_text(record.run_id, record.traceback, "traceback.txt")
        self.client.set_terminated(record.run_id, RUN_STATUS[record.state], end_time=now)

    def closed(self, run_id: str) -> bool:
        return self.client.get_run(run_id).info.status in _CLOSED

    def find_trial(self, study_name: str, trial_id: int) -> str | None:
        runs = lookup.trial_runs(self.client, self.experiment_id(study_name), trial_id, limit=1)
        return runs[0].info.run_id if runs else None

    def one_record(self, study_name: str, trial_id: int, run_id: str) -> str:
        """The trial's one record; the others seen are deleted (:func:`~._mlflow_lookup.keep_one`)."""
        kept, deleted = lookup.keep_one(self.client, self.experiment_id(study_name), trial_id, run_id)
        for gone in deleted:
            self._configs.pop(gone, None)
        return kept

    def open_trials(self, study_name: str) -> dict[int, str]:
        return lookup.open_trials(self.client, study_name)

    def recorded_trials(self, study_name: str) -> set[int]:
        """Also those whose record's opening is under way in this process: it may land yet."""
        return lookup.recorded_trials(self.client, study_name)

    def upload_checkpoint(self, run_id: str, folder: Path) -> None:
        self.client.log_artifacts(run_id, str(folder), "checkpoint")
        self.client.set_tag(run_id, _CHECKPOINT_TAG, "kept")  # after the last file: it is whole

    def checkpoint_kept(self, run_id: str) -> bool:
        return self.client.get_run(run_id).data.tags.get(_CHECKPOINT_TAG) == "kept"

    def download_checkpoint(self, run_id: str, folder: Path) -> bool:
        if not self.client.list_artifacts(run_id, "checkpoint"):
            return False
        with tempfile.TemporaryDirectory() as tmp:
            fetched = Path(self.client.download_artifacts(run_id, "checkpoint", tmp))
            shutil.copytree(fetched, folder, dirs_exist_ok=True)
        return True

    def log_model(self, run_id: str, path: Path) -> str:
        """Upload ``path`` as the artifact ``model/`` of run ``run_id``; return ``runs:/<run id>/model``."""
        return upload_model(self.client, run_id, path)

    def log_proposals(
        self, run_id: str, proposals: Sequence[Mapping[str, Any]], guard: Mapping[str, Any] | None = None
    ) -> None:
        """On the parent run: ``meta/proposals.json``, how the proposals ranked, and the guard's verdict.

        The guard's verdict is the tag ``autotweak.meta_guard`` ("tripped" or "not tripped"),
        the metrics ``meta_guard_tau`` and ``meta_guard_results`` when it tripped, and
        ``meta/guard.json``.
        """
        text = json.dumps([dict(p) for p in proposals], indent=2, default=str)
        self.client.log_text(run_id, text, "meta/proposals.json")
        ranks = [int(p["rank"]) for p in proposals if p.get("rank") is not None]
        metrics = {"meta_proposals": float(len(proposals))}
        if ranks:
            metrics["meta_best_proposal_rank"] = float(min(ranks))
        record = dict(guard or {})
        metrics.update({f"meta_guard_{k}": float(record[k]) for k in ("tau", "results") if k in record})
        tag = ("autotweak.meta_guard", "tripped" if guard else "not tripped")
        self._log(run_id, metrics=metric_entities(metrics.items()), tags=tag_entities([tag]))
        self.client.log_dict(run_id, {"tripped": bool(guard), **record}, "meta/guard.json")

    def log_session(self, run_id: str, session_id: str, text: str) -> None:
        """Tag ``autotweak.session.<id>`` of the parent run: the session's line, as the UI lists tags."""
        self.client.set_tag(run_id, f"autotweak.session.{session_id}", text[:_TAG_LIMIT])

    def refused(self, exc: Exception) -> bool:
        """MLflow's answer to bad data (an invalid param, a deleted run), not to a store that is away."""
        return isinstance(exc, MlflowException) and exc.error_code in _REFUSALS

    def mark_failed(self, run_id: str, reason: str, *, state: TrialState = "failed") -> None:
        tags = {"autotweak.state": state, "autotweak.failure": reason}
        run = self.client.get_run(run_id)
        params = [p for p in config_params(stored_config(self.client, run)) if p.key not in run.data.params]
        self._log(run_id, params=params, tags=tag_entities(tags.items()))
        self.client.set_terminated(run_id, RUN_STATUS[state])

    # -- helpers --------------------------------------------------------------------
    def _log(
        self,
        run_id: str,
        *,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        """Write in as few ``log_batch`` calls as MLflow's per-request limits allow."""
        chunks = max(
            -(-len(params) // _PARAM_BATCH), -(-len(tags) // _PARAM_BATCH), -(-len(metrics) // _BATCH), 1
        )
        for i in range(chunks):
            m = metrics[i * _BATCH : (i + 1) * _BATCH]
            p = params[i * _PARAM_BATCH : (i + 1) * _PARAM_BATCH]
            t = tags[i * _PARAM_BATCH : (i + 1) * _PARAM_BATCH]
            if m or p or t:
                with IN_FLIGHT.sending(run_id, m):  # a catch-up meanwhile writes these points as they are
                    self.client.log_batch(run_id, metrics=m, params=p, tags=t)
