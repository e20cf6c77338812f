"""autotweak: declared experiments, adaptive search with pruning, every trial in MLflow.

The public names are imported on first use, so that ``import autotweak`` (and the
``autotweak`` command, which starts by importing it) does not wait for Optuna and MLflow
before it can even answer ``--help`` or be interrupted cleanly.

Example:
    >>> import autotweak
    >>> result = autotweak.optimize("examples/sklearn_wine.yaml")  # doctest: +SKIP
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autotweak.engine import Study, StudyInterrupted, StudyResult, Trial, TrialPruned, optimize
    from autotweak.exceptions import AutotweakError, SpecError
    from autotweak.space import SearchSpace, load_space
    from autotweak.spec import Budget, Component, Execution, Experiment, Metric, load_experiment

__version__ = "0.1.0"

# The `autotweak` logger has no NullHandler: where nothing configures logging, Python's last-resort
# handler shows its warnings on stderr (a study whose trials all fail, a model the registry refused),
# and nothing else.

_HOMES = {
    "autotweak.engine": ("Study", "StudyInterrupted", "StudyResult", "Trial", "TrialPruned", "optimize"),
    "autotweak.exceptions": ("AutotweakError", "SpecError"),
    "autotweak.space": ("SearchSpace", "load_space"),
    "autotweak.spec": ("Budget", "Component", "Execution", "Experiment", "Metric", "load_experiment"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

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


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use (PEP 562)."""
    home = _HOME_OF.get(name)
    if home is None:
        raise AttributeError(f"module 'autotweak' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
