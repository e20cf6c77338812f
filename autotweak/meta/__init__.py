"""Learning from past experiments: histories, the meta-learner, learned curve models.

Example:
    >>> from autotweak.meta import Histories
    >>> Histories(tasks=()).n_trials
    0
"""

from autotweak.meta._histories import Direction, Histories, HistoryError, PastTrial, SkipReport, TaskHistory

__all__ = [
    "Direction",
    "Histories",
    "HistoryError",
    "PastTrial",
    "SkipReport",
    "TaskHistory",
]
