"""autotweak: declared experiments, adaptive search with pruning, every trial in MLflow.

The public names are imported on first use, so that ``import autotweak`` (and the
``autotweak`` command, which starts by importing it) does not wait for Optuna and MLflow
before it can even answer ``--help`` or be interrupted cleanly.

Example:
    >>> import autotweak
    >>> result = autotweak.optimize("examples/sklearn_wine.yaml")  # doctest: +SKIP
"""

from typing import TYPE_CHECKING

from autotweak._imports import lazy_exports

__version__ = "0.1.0"

# The `autotweak` logger has no NullHandler: where nothing configures logging, Python's last-resort
# handler shows its warnings on stderr (a study whose trials all fail, a model the registry refused),
# and nothing else.

if TYPE_CHECKING:
    from autotweak.engine import Study, StudyResult, Trial, TrialPruned, optimize
    from autotweak.exceptions import AutotweakError, SpecError, StudyInterrupted
    from autotweak.space import SearchSpace, load_space
    from autotweak.spec import Budget, Component, Execution, Experiment, Metric, load_experiment
else:  # a type checker reads the imports above, and says so of a misspelt name
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "autotweak.engine": ("Study", "Trial", "TrialPruned"),
            "autotweak.engine._optimize": ("StudyResult", "optimize"),
            "autotweak.exceptions": ("AutotweakError", "SpecError", "StudyInterrupted"),
            "autotweak.space": ("SearchSpace", "load_space"),
            "autotweak.spec": ("Budget", "Component", "Execution", "Experiment", "Metric", "load_experiment"),
        },
    )

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
    "StudyInterrupted",
    "StudyResult",
    "Trial",
    "TrialPruned",
    "__version__",
    "load_experiment",
    "load_space",
    "optimize",
]
