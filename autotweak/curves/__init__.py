"""Learned learning curves: a model of how curves end, and the pruner that uses it.

Example:
    >>> from autotweak.curves import LearnedCurvePruner
    >>> pruner = LearnedCurvePruner(model="auto", top_k=5, threshold=0.1)
"""

from autotweak.curves._evaluate import evaluate_curve_model
from autotweak.curves._fit import fit_curve_model
from autotweak.curves._library import CURVE_SUFFIX, curve_model_paths, load_curve_model
from autotweak.curves._model import CurveModel, CurveModelError, CurveModelVersionError
from autotweak.curves._pruner import ATTR_PREFIX, Decision, LearnedCurvePruner, PrunerArgumentError

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
