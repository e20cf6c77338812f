"""The search engine: studies, workers, executors, budgets and the ask/tell API.

The public names are imported on first use: a light module of the engine (the study's
attributes, its summary) is imported without the whole engine and its trackers (MLflow).
"""

from typing import TYPE_CHECKING

from autotweak._imports import lazy_exports

if TYPE_CHECKING:
    from autotweak.engine._ask_tell import Study
    from autotweak.engine._executors import BaseExecutor, InlineExecutor, ProcessExecutor
    from autotweak.engine._monitor import Progress
    from autotweak.engine._optimize import StudyResult, optimize
    from autotweak.engine._trial import Trial, TrialPruned
    from autotweak.exceptions import StudyInterrupted
    from autotweak.spec._components import PRUNERS, SAMPLERS
else:  # a type checker reads the imports above, and says so of a misspelt name
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "autotweak.engine._ask_tell": ("Study",),
            "autotweak.engine._executors": ("BaseExecutor", "InlineExecutor", "ProcessExecutor"),
            "autotweak.engine._monitor": ("Progress",),
            "autotweak.engine._optimize": ("StudyResult", "optimize"),
            "autotweak.engine._trial": ("Trial", "TrialPruned"),
            "autotweak.exceptions": ("StudyInterrupted",),
            "autotweak.spec._components": ("PRUNERS", "SAMPLERS"),
        },
    )

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
