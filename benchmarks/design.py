"""The config design of a family: a scrambled Sobol design mapped through its search space.

Row ``r`` of ``Sobol(d, scramble=True, seed=0).random(256)`` is config ``r``; the mapping
from the unit cube to a config is the search space's own (``SearchSpace.from_unit``), so
the replay harness snaps proposals with the same coordinates. ``autotweak`` is imported
only when a design is computed, so build workers never import it.

Example:
    >>> configs = design_configs("hgb")
    >>> len(configs), sorted(configs[0])[:2]
    (256, ['l2_regularization', 'learning_rate'])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from scipy.stats import qmc

if TYPE_CHECKING:
    from autotweak.space import SearchSpace

__all__ = ["DESIGN_SIZE", "design_configs", "design_units"]

DESIGN_SIZE = 256


def design_units(space: SearchSpace) -> NDArray[np.float64]:
    """The ``(256, d)`` unit-cube design, ``d`` the number of tunable parameters of ``space``."""
    sampler = qmc.Sobol(len(space.tunable), scramble=True, seed=0)
    return np.asarray(sampler.random(DESIGN_SIZE), dtype=np.float64)


def design_configs(family: str, n_configs: int = DESIGN_SIZE) -> list[dict[str, Any]]:
    """The first ``n_configs`` configs of a family's design; list index is ``config_id``.

    Args:
        family: A search space name of the library that is also a family (``"hgb"``, ``"mlp"``).
        n_configs: How many of the 256 rows to keep (fewer only for tests).

    Raises:
        ValueError: if ``n_configs`` is not in ``1..256``.
    """
    if not 1 <= n_configs <= DESIGN_SIZE:
        raise ValueError(f"n_configs must be an integer in 1..{DESIGN_SIZE}, got n_configs={n_configs}.")
    from autotweak.space import load_space

    space = load_space(family)
    units = design_units(space)[:n_configs]
    return [space.from_unit(row.tolist()) for row in units]
