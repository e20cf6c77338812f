"""Trackers: where trials are recorded for people to read (MLflow by default)."""

from autotweak.tracking._base import BaseTracker, NullTracker
from autotweak.tracking._mlflow import MlflowTracker
from autotweak.tracking._models import register_model, upload_model
from autotweak.tracking._offload import OffloadingTracker
from autotweak.tracking._records import StudyInfo, StudySummary, TrialRecord, TrialStart
from autotweak.tracking._server import check_tracking_server

__all__ = [
    "BaseTracker",
    "MlflowTracker",
    "NullTracker",
    "OffloadingTracker",
    "StudyInfo",
    "StudySummary",
    "TrialRecord",
    "TrialStart",
    "check_tracking_server",
    "register_model",
    "upload_model",
]
