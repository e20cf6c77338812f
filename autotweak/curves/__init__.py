"""Learned learning curves: a model of how curves end, and the pruner that uses it.

Example:
    >>> from autotweak.curves import LearnedCurvePruner
    >>> pruner = LearnedCurvePruner(model="auto", top_k=5, threshold=0.1)

The public names are imported on first use: the learned pruner is built without the
fitting and evaluation code, which only ``meta fit`` needs.
"""

from typing import TYPE_CHECKING

from autotweak._imports import lazy_exports

if TYPE_CHECKING:
    from autotweak.curves._evaluate import evaluate_curve_model
    from autotweak.curves._fit import fit_curve_model
    from autotweak.curves._library import CURVE_SUFFIX, curve_model_paths, load_curve_model
    from autotweak.curves._model import CurveModel, CurveModelError, CurveModelVersionError
    from autotweak.curves._pruner import ATTR_PREFIX, Decision, LearnedCurvePruner, PrunerArgumentError
else:  # a type checker reads the imports above, and says so of a misspelt name
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "autotweak.curves._evaluate": ("evaluate_curve_model",),
            "autotweak.curves._fit": ("fit_curve_model",),
            "autotweak.curves._library": ("CURVE_SUFFIX", "curve_model_paths", "load_curve_model"),
            "autotweak.curves._model": ("CurveModel", "CurveModelError", "CurveModelVersionError"),
            "autotweak.curves._pruner": (
                "ATTR_PREFIX",
                "Decision",
                "LearnedCurvePruner",
                "PrunerArgumentError",
            ),
        },
    )

__all__ = [
    "ATTR_PREFIX",
    "CURVE_SUFFIX",
    "CurveModel",
    "CurveModelError",
    "CurveModelVersionError",
    "Decision",
    "LearnedCurvePruner",
    "PrunerArgumentError",
    "curve_model_paths",
    "evaluate_curve_model",
    "fit_curve_model",
    "load_curve_model",
]
