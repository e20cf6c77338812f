"""Learning from past experiments: histories, the meta-learner, learned curve models.

Example:
    >>> from autotweak.meta import Histories
    >>> Histories(tasks=()).n_trials
    0
"""

from autotweak.meta._family import LIBRARY_FAMILIES, family_space, infer_space
from autotweak.meta._histories import Direction, Histories, HistoryError, PastTrial, SkipReport, TaskHistory
from autotweak.meta._mapping import ParamMapper, map_params
from autotweak.meta._table import read_table

__all__ = [
    "LIBRARY_FAMILIES",
    "Direction",
    "Histories",
    "HistoryError",
    "ParamMapper",
    "PastTrial",
    "SkipReport",
    "TaskHistory",
    "family_space",
    "infer_space",
    "map_params",
    "read_table",
]
