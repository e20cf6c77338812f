import numpy as np
import pytest
from scipy.stats import qmc

from autotweak.space import load_space
from benchmarks.design import DESIGN_SIZE, design_configs, design_units


@pytest.mark.parametrize(("family", "dims"), [("hgb", 5), ("mlp", 6)])
def test_design_is_the_scrambled_sobol_design_mapped_by_the_space(family: str, dims: int) -> None:
    space = load_space(family)
    units = design_units(space)
    assert units.shape == (DESIGN_SIZE, dims)
    assert np.array_equal(units, qmc.Sobol(dims, scramble=True, seed=0).random(256))
    configs = design_configs(family)
    assert configs == [space.from_unit(list(row)) for row in units]
    assert len({tuple(sorted(config.items())) for config in configs}) == DESIGN_SIZE


def test_fewer_configs_are_the_first_rows_of_the_design() -> None:
    assert design_configs("hgb", 4) == design_configs("hgb")[:4]


def test_n_configs_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="n_configs must be"):
        design_configs("hgb", 0)
