"""The search engine: studies, workers, executors, budgets and the ask/tell API."""

from autotweak.engine._ask_tell import Study
from autotweak.engine._executors import BaseExecutor, InlineExecutor, ProcessExecutor
from autotweak.engine._monitor import Progress
from autotweak.engine._optimize import StudyInterrupted, StudyResult, optimize
from autotweak.engine._trial import Trial, TrialPruned
from autotweak.spec._components import PRUNERS, SAMPLERS

__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "BaseExecutor",
    "InlineExecutor",
    "ProcessExecutor",
    "Progress",
    "Study",
    "StudyInterrupted",
    "StudyResult",
    "Trial",
    "TrialPruned",
    "optimize",
]
