"""autotweak: declared experiments, adaptive search with pruning, every trial in MLflow.

Example:
    >>> import autotweak
    >>> result = autotweak.optimize("examples/sklearn_wine.yaml")  # doctest: +SKIP
"""

import logging

from autotweak.engine import Study, StudyResult, Trial, TrialPruned, optimize
from autotweak.exceptions import AutotweakError, SpecError
from autotweak.space import SearchSpace, load_space
from autotweak.spec import Budget, Component, Execution, Experiment, Metric, load_experiment

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "AutotweakError",
    "Budget",
    "Component",
    "Execution",
    "Experiment",
    "Metric",
    "SearchSpace",
    "SpecError",
    "Study",
    "StudyResult",
    "Trial",
    "TrialPruned",
    "__version__",
    "load_experiment",
    "load_space",
    "optimize",
]
