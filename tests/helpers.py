"""Readers of the stores for assertions (tests only)."""

from __future__ import annotations

from dataclasses import dataclass, field

import optuna
from mlflow import MlflowClient
from mlflow.entities import Run

from autotweak._locations import resolve_storage_url
from autotweak.spec import Experiment


def load(experiment: Experiment) -> optuna.Study:
    """The Optuna study of ``experiment`` in this test's storage."""
    return optuna.load_study(study_name=experiment.name, storage=resolve_storage_url(experiment.storage))


@dataclass
class Runs:
    parents: list[Run] = field(default_factory=list)
    children: dict[int, Run] = field(default_factory=dict)
    duplicates: list[int] = field(default_factory=list)


def mlflow_runs(client: MlflowClient, study: str) -> Runs:
    """The study's parent run(s) and child runs keyed by trial number."""
    experiment = client.get_experiment_by_name(study)
    assert experiment is not None, f"no MLflow experiment named {study}"
    runs = Runs()
    for run in client.search_runs([experiment.experiment_id], max_results=5000):
        kind = run.data.tags.get("autotweak.kind")
        if kind == "study":
            runs.parents.append(run)
        elif kind == "trial":
            number = int(run.data.tags["autotweak.trial_number"])
            if number in runs.children:
                runs.duplicates.append(number)
            runs.children[number] = run
    return runs
