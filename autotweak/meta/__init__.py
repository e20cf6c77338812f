"""Learning from past experiments: histories, the meta-learner, learned curve models.

Example:
    >>> from autotweak.meta import Histories
    >>> Histories(tasks=()).n_trials
    0

The public names are imported on first use: the meta sampler is built without the MLflow
reader and the fitting code (scikit-learn), which only ``meta fit`` needs.
"""

from typing import TYPE_CHECKING

from autotweak._imports import lazy_exports

if TYPE_CHECKING:
    from autotweak.meta._describe import DatasetError, describe_dataset
    from autotweak.meta._family import LIBRARY_FAMILIES, family_space, infer_space
    from autotweak.meta._fit import fit_meta_model, normalized_scores
    from autotweak.meta._histories import (
        Direction,
        Histories,
        HistoryError,
        PastTrial,
        SkipReport,
        TaskHistory,
    )
    from autotweak.meta._library import model_paths, resolve_meta_model
    from autotweak.meta._mapping import ParamMapper, map_params
    from autotweak.meta._mlflow_source import read_mlflow
    from autotweak.meta._model import MetaModel, MetaModelError, load_meta_model
    from autotweak.meta._optuna_source import read_optuna
    from autotweak.meta._propose import Proposal, Proposer, descriptor_weights
    from autotweak.meta._records import GUARD_ATTR, PROPOSAL_ATTR, PROPOSALS_ATTR, guard_of, proposals_of
    from autotweak.meta._sampler import MetaSampler
    from autotweak.meta._sampler_args import MetaSamplerArgumentError
    from autotweak.meta._table import read_table
else:  # a type checker reads the imports above, and says so of a misspelt name
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "autotweak.meta._describe": ("DatasetError", "describe_dataset"),
            "autotweak.meta._family": ("LIBRARY_FAMILIES", "family_space", "infer_space"),
            "autotweak.meta._fit": ("fit_meta_model", "normalized_scores"),
            "autotweak.meta._histories": (
                "Direction",
                "Histories",
                "HistoryError",
                "PastTrial",
                "SkipReport",
                "TaskHistory",
            ),
            "autotweak.meta._library": ("model_paths", "resolve_meta_model"),
            "autotweak.meta._mapping": ("ParamMapper", "map_params"),
            "autotweak.meta._mlflow_source": ("read_mlflow",),
            "autotweak.meta._model": ("MetaModel", "MetaModelError", "load_meta_model"),
            "autotweak.meta._optuna_source": ("read_optuna",),
            "autotweak.meta._propose": ("Proposal", "Proposer", "descriptor_weights"),
            "autotweak.meta._records": (
                "GUARD_ATTR",
                "PROPOSAL_ATTR",
                "PROPOSALS_ATTR",
                "guard_of",
                "proposals_of",
            ),
            "autotweak.meta._sampler": ("MetaSampler",),
            "autotweak.meta._sampler_args": ("MetaSamplerArgumentError",),
            "autotweak.meta._table": ("read_table",),
        },
    )

__all__ = [
    "LIBRARY_FAMILIES",
    "GUARD_ATTR",
    "PROPOSALS_ATTR",
    "PROPOSAL_ATTR",
    "DatasetError",
    "Direction",
    "MetaModel",
    "MetaModelError",
    "MetaSampler",
    "MetaSamplerArgumentError",
    "Proposal",
    "Proposer",
    "describe_dataset",
    "descriptor_weights",
    "fit_meta_model",
    "load_meta_model",
    "model_paths",
    "resolve_meta_model",
    "normalized_scores",
    "proposals_of",
    "guard_of",
    "Histories",
    "HistoryError",
    "ParamMapper",
    "PastTrial",
    "SkipReport",
    "TaskHistory",
    "family_space",
    "infer_space",
    "map_params",
    "read_mlflow",
    "read_optuna",
    "read_table",
]
