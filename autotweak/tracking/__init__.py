"""Trackers: where trials are recorded for people to read (MLflow by default).

The public names are imported on first use: the records and the base class are read
without importing MLflow, which only the MLflow tracker and the model registry need.
"""

from typing import TYPE_CHECKING

from autotweak._imports import lazy_exports

if TYPE_CHECKING:
    from autotweak.tracking._base import BaseTracker, NullTracker
    from autotweak.tracking._mlflow import MlflowTracker
    from autotweak.tracking._models import register_model, upload_model
    from autotweak.tracking._offload import OffloadingTracker
    from autotweak.tracking._records import RECONCILED_TAG, StudyInfo, StudySummary, TrialRecord, TrialStart
    from autotweak.tracking._server import check_tracking_server
else:  # a type checker reads the imports above, and says so of a misspelt name
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "autotweak.tracking._base": ("BaseTracker", "NullTracker"),
            "autotweak.tracking._mlflow": ("MlflowTracker",),
            "autotweak.tracking._models": ("register_model", "upload_model"),
            "autotweak.tracking._offload": ("OffloadingTracker",),
            "autotweak.tracking._records": (
                "RECONCILED_TAG",
                "StudyInfo",
                "StudySummary",
                "TrialRecord",
                "TrialStart",
            ),
            "autotweak.tracking._server": ("check_tracking_server",),
        },
    )

__all__ = [
    "RECONCILED_TAG",
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
