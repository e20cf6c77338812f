"""Search spaces: parameters, conditions, and the library of reusable named spaces."""

from autotweak.space._library import available_spaces, load_space, space_from_definition
from autotweak.space._params import (
    CategoricalParam,
    Condition,
    FixedParam,
    FloatParam,
    IntParam,
    Param,
)
from autotweak.space._space import SearchSpace

__all__ = [
    "CategoricalParam",
    "Condition",
    "FixedParam",
    "FloatParam",
    "IntParam",
    "Param",
    "SearchSpace",
    "available_spaces",
    "load_space",
    "space_from_definition",
]
